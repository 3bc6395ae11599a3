"""Training tokens/s of v5's GPT under ``torch.compile`` against the same model run eagerly.

One pair, the same seeded weights and token ids: ``compiled`` runs the forward pass and the
loss as one graph (``torch.compile(..., fullgraph=True)``, Inductor; the backward graph
comes with it), ``eager`` runs them op by op. The step is a training step: forward,
cross-entropy, backward, ``torch.optim.AdamW`` step. Compiling happens while the workload
is built (two steps), so the timed and measured steps are warm. Before anything is
measured, the eval-mode logits of the two must agree to 1e-5.

On CPU, Inductor compiles C++ and needs a C++ compiler (``apt-get install g++``).

Run from the repository root::

    poetry run python benchmarks/compiled.py --threads 2
    poetry run python benchmarks/compiled.py --quick
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from _cli import add_size_flags, check_size_flags
from _harness import Benchmark, add_tokens_per_s, main
from _report import COLUMNS, MAX_DIFF_COLUMN
from gpt import LEARNING_RATE, TrainStep

DTYPE = torch.float32
TOLERANCE = 1e-5
LABELS = {"compiled": "v5 GPT, torch.compile", "eager": "v5 GPT, eager"}
PAIRS = [("compiled", "eager")]


def build_workload(impl: str, spec: dict, device: torch.device) -> TrainStep:
    """v5's GPT in train mode on seeded ids (B, T), compiled or not, with AdamW."""
    from transformer.v5_gpt import GPT, GPTConfig

    case, seq_len = spec["case"], spec["seq_len"]
    sizes = ("vocab_size", "n_embd", "n_layer", "n_head")
    config = GPTConfig(**{name: case[name] for name in sizes}, n_positions=seq_len,
                       embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)  # fmt: skip
    model = GPT(config).to(device=device, dtype=DTYPE).train()
    idx = torch.randint(case["vocab_size"], (case["batch"], seq_len + 1), device=device)

    def loss_of(tokens: torch.Tensor) -> torch.Tensor:  # (B, T + 1) -> ()
        logits = model(tokens[:, :-1])  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())

    def logits_of(tokens: torch.Tensor) -> torch.Tensor:
        return model(tokens[:, :-1])  # (B, T, V)

    if impl == "compiled":
        loss_of = torch.compile(loss_of, fullgraph=True)
        logits_of = torch.compile(logits_of, fullgraph=True)

    def evaluate() -> torch.Tensor:
        model.eval()
        try:
            with torch.no_grad():
                return logits_of(idx)  # (B, T, V)
        finally:
            model.train()

    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    workload = TrainStep(lambda: loss_of(idx), list(model.parameters()), evaluate, optimizer)
    if impl == "compiled":  # compile now, not in the timed steps; then start from the seed
        state = {k: v.clone() for k, v in model.state_dict().items()}
        for _ in range(2):
            workload.step()
        model.load_state_dict(state)
        optimizer.state.clear()
    return workload


SIZE_FLAGS = [
    ("--batch", 8, "batch size B"),
    ("--vocab-size", 256, "vocabulary size V"),
    ("--n-embd", 256, "embedding size"),
    ("--n-layer", 4, "blocks"),
    ("--n-head", 4, "attention heads"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_size_flags(parser, SIZE_FLAGS, 0.0, "unused: the step runs without dropout")


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    check_size_flags(parser, args, SIZE_FLAGS, ("--n-embd", "--n-head"))


def case_of(args: argparse.Namespace) -> dict:
    return {
        "batch": args.batch,
        "vocab_size": args.vocab_size,
        "n_embd": args.n_embd,
        "n_layer": args.n_layer,
        "n_head": args.n_head,
        "dtype": str(DTYPE),
        "compile": "torch.compile(forward + loss, fullgraph=True), default Inductor mode",
        "optimizer": f"torch.optim.AdamW(lr={LEARNING_RATE:g}), eager in both",
    }


def describe(case: dict) -> list[str]:
    return [
        f"v5 GPT: vocab {case['vocab_size']}, n_embd {case['n_embd']}, n_layer "
        f"{case['n_layer']}, n_head {case['n_head']}; batch B={case['batch']}, T = context",
        "step = forward + cross-entropy + backward + AdamW, train mode, no dropout; "
        "tok/s = B*T / median step; tok/s ratio = compiled / eager",
    ]


SHARED = {column[0]: column for column in COLUMNS}
COMPILE_COLUMNS = [
    *(SHARED[title] for title in ("device", "T", "time (ms)", "ref time (ms)")),
    ("tok/s", lambda r: r["tokens_per_s"], ",.0f"),
    ("eager tok/s", lambda r: r["ref_tokens_per_s"], ",.0f"),
    ("tok/s ratio", lambda r: r["tokens_per_s_ratio"], ".2f"),
    *(SHARED[title] for title in ("peak mem (MiB)", "ref peak mem (MiB)", "mem ratio")),
    MAX_DIFF_COLUMN,
]

BENCHMARK = Benchmark(
    script=Path(__file__).resolve(),
    description="Training tokens/s: v5's GPT compiled (torch.compile, fullgraph) vs eager.",
    labels=LABELS,
    pairs=PAIRS,
    build=build_workload,
    case=case_of,
    describe=describe,
    default_seq_lens=[128, 256],
    add_arguments=add_arguments,
    validate=validate,
    tolerance=TOLERANCE,
    columns=COMPILE_COLUMNS,
    finish_row=add_tokens_per_s,
    step="forward, cross-entropy loss, backward, AdamW step (train mode)",
    ratio_note="tok/s ratio = compiled / eager (above 1: compiling pays)",
)

if __name__ == "__main__":
    main(BENCHMARK)
