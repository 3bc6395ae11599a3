"""Training throughput and MFU of our GPT against Hugging Face's ``GPT2LMHeadModel``, side by side.

Two pairs: ``v5_gpt.GPT`` next to ``transformers.GPT2LMHeadModel`` built offline from a
``GPT2Config`` of the same sizes with ``attn_implementation="sdpa"``, once with GPT-2's own
``activation_function="gelu_new"`` (the default; GELU written out in Python) and once with
``"gelu_pytorch_tanh"`` (the fused ``F.gelu(approximate="tanh")`` that ours calls). Ours is
made from the reference with ``from_hf_gpt2``, so the weights and the token ids are identical.

Before anything is measured, the logits of each pair are compared in eval mode and must agree
to 1e-5, or the run stops with status 1. The measured step is a training step in train mode:
forward, cross-entropy (Hugging Face's own ``labels=`` loss; for ours the same shifted targets),
backward, ``torch.optim.AdamW`` step. Dropout defaults to 0 (nanoGPT's pretraining setting and
what MFU figures assume); ``--dropout 0.1`` is GPT-2's.

Reported: tokens/s (B·T / median step time) and their ratio ours / Hugging Face (above 1: ours
is faster), and MFU = flops_per_token · tokens/s / the float32 matmul peak measured in the same
timing process. flops_per_token = 6N + 12·n_layer·n_embd·T (PaLM appendix B, nanoGPT's
``estimate_mfu``), N = all parameters but the position embedding (nanoGPT's
``get_num_params``). Method, child processes and common flags are shared with ``block.py``
(``_harness``; see ``benchmarks/README.md``).

Run from the repository root::

    poetry run python benchmarks/gpt.py --threads 1          # CPU, plus CUDA if present
    poetry run python benchmarks/gpt.py --device cuda --n-embd 768 --n-layer 12 --n-head 12
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from _cli import add_size_flags, check_size_flags
from _harness import Benchmark, Workload, main, ratio
from _report import COLUMNS, MAX_DIFF_COLUMN, Column

if TYPE_CHECKING:
    from transformers import GPT2Config

DTYPE = torch.float32
TOLERANCE = 1e-5
IGNORE_INDEX = -100  # the label Hugging Face's loss skips: the last position has no next token
LEARNING_RATE = 3e-4
PEAK_REPEATS = (2, 20)  # fewest and most timed matmuls per size; the fastest counts
PEAK_BUDGET_S = 1.0  # timed matmuls per size go on until this much time (or the most) is spent

# the references differ only in GPT2Config.activation_function, two spellings of one GELU:
# GPT-2's own "gelu_new" (written out in Python: pow, tanh, mul, add) and "gelu_pytorch_tanh"
# (PyTorch's fused F.gelu(approximate="tanh"), the call ours makes)
HF_GELU = {"hf": "gelu_new", "hf_fused": "gelu_pytorch_tanh"}
LABELS = {
    "v5": "v5 GPT",
    "hf": "GPT2LMHeadModel, gelu_new",
    "hf_fused": "GPT2LMHeadModel, gelu_pytorch_tanh",
}
PAIRS = [("v5", "hf"), ("v5", "hf_fused")]


@dataclass
class TrainStep(Workload):
    """A training step: ``forward`` returns the loss; ``step`` adds backward and AdamW."""

    optimizer: torch.optim.Optimizer | None = None

    def step(self) -> None:
        """Empty gradients, forward + loss, backward, one optimizer step."""
        self.optimizer.zero_grad(set_to_none=True)
        self.forward().backward()
        self.optimizer.step()


def hf_config(case: dict, activation: str) -> GPT2Config:
    """The ``GPT2Config`` of the case: GPT-2's architecture, the case's sizes and dropout."""
    from transformers import GPT2Config

    p = case["dropout"]
    return GPT2Config(
        vocab_size=case["vocab_size"],
        n_positions=case["n_positions"],
        n_embd=case["n_embd"],
        n_layer=case["n_layer"],
        n_head=case["n_head"],
        activation_function=activation,
        embd_pdrop=p,
        attn_pdrop=p,
        resid_pdrop=p,
        bos_token_id=None,  # GPT-2's 50256 lies outside a small vocabulary
        eos_token_id=None,
    )


def build_workload(impl: str, spec: dict, device: torch.device) -> TrainStep:
    """Our GPT or a GPT2LMHeadModel in train mode, on token ids (B, T), with AdamW.

    Ours is converted from the ``gelu_new`` reference; the weights do not depend on the
    activation, so both references have them too.
    """
    from transformers import GPT2LMHeadModel
    from transformers.utils import logging

    from transformer.v5_gpt import from_hf_gpt2

    logging.set_verbosity_error()  # its note that loss_type=None means the default loss
    case, seq_len = spec["case"], spec["seq_len"]
    activation = HF_GELU.get(impl, HF_GELU["hf"])
    reference = GPT2LMHeadModel._from_config(
        hf_config(case, activation), attn_implementation="sdpa"
    )
    idx = torch.randint(case["vocab_size"], (case["batch"], seq_len))  # (B, T)
    model = reference if impl in HF_GELU else from_hf_gpt2(reference)  # after idx: same ids
    model = model.to(device=device, dtype=DTYPE).train()
    idx = idx.to(device)  # (B, T)

    if impl in HF_GELU:

        def logits() -> torch.Tensor:
            return model(idx, use_cache=False).logits  # (B, T, V)

        def loss() -> torch.Tensor:
            return model(idx, labels=idx, use_cache=False).loss  # shifts labels itself

    else:
        # Hugging Face's targets: position t predicts token t+1; the last predicts nothing
        targets = F.pad(idx[:, 1:], (0, 1), value=IGNORE_INDEX)  # (B, T)

        def logits() -> torch.Tensor:
            return model(idx)  # (B, T, V)

        def loss() -> torch.Tensor:
            flat = model(idx).view(-1, case["vocab_size"])  # (B*T, V)
            return F.cross_entropy(flat, targets.view(-1), ignore_index=IGNORE_INDEX)

    def evaluate() -> torch.Tensor:
        """The logits in eval mode (no dropout), gradients on as in the timed step."""
        model.eval()
        try:
            return logits().detach()  # (B, T, V)
        finally:
            model.train()

    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    return TrainStep(loss, list(model.parameters()), evaluate, optimizer)


# ---------------------------------------------------------------- FLOPs and the matmul peak


def matmul_peak(spec: dict, device: torch.device) -> dict:
    """The best float32 FLOP/s of ``torch.mm`` on n×n matrices, over the case's sizes.

    Runs in the timing child, so it uses the same threads and sees the same machine load as
    the timed steps. Per size one untimed matmul, then timed ones (``PEAK_REPEATS``,
    ``PEAK_BUDGET_S``); 2n³ FLOPs each.
    """
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    by_size = {}
    for n in spec["case"]["peak_sizes"]:
        a, b, out = (torch.randn(n, n, device=device, dtype=DTYPE) for _ in range(3))
        torch.mm(a, b, out=out)
        times: list[float] = []
        fewest, most = PEAK_REPEATS
        while len(times) < fewest or (len(times) < most and sum(times) < PEAK_BUDGET_S):
            sync()
            started = time.perf_counter()
            torch.mm(a, b, out=out)
            sync()
            times.append(time.perf_counter() - started)
        by_size[str(n)] = 2 * n**3 / min(times)
    return {
        "matmul_peak_flops": max(by_size.values()),
        "matmul_flops_by_size": by_size,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def flops_per_token(case: dict, seq_len: int) -> int:
    """6N + 12·n_layer·n_embd·T: the training FLOPs of one token (forward 2N + backward 4N,
    plus attention's QKᵀ and AV over all T keys, causal half not subtracted)."""
    return 6 * case["n_params"] + 12 * case["n_layer"] * case["n_embd"] * seq_len


def finish_row(row: dict, case: dict) -> None:
    """Add tokens/s, their ratio ours / reference, FLOPs and MFU to a measured row."""
    tokens = case["batch"] * row["seq_len"]
    per_token = flops_per_token(case, row["seq_len"])
    peak = row.get("probe", {}).get("matmul_peak_flops")
    for side in ("", "ref_"):
        ms = row[f"{side}time_ms"]
        per_s = tokens / (ms / 1e3) if ms else None
        row[f"{side}tokens_per_s"] = per_s
        row[f"{side}mfu"] = per_token * per_s / peak if per_s and peak else None
    row["tokens_per_s_ratio"] = ratio(row["tokens_per_s"], row["ref_tokens_per_s"])
    # the two sides alternate round by round: the median of the rounds' own ratios is
    # steadier than the ratio of the medians when the machine's load changes during the run
    rounds = zip(row["ours"].get("times_ms", []), row["ref"].get("times_ms", []), strict=True)
    paired = [ref_ms / ours_ms for ours_ms, ref_ms in rounds]
    row["tokens_per_s_ratio_paired"] = statistics.median(paired) if paired else None
    row["tokens_per_step"] = tokens
    row["flops_per_token"] = per_token
    row["matmul_peak_flops"] = peak
    row["matmul_peak_gflops"] = peak / 1e9 if peak else None


# ---------------------------------------------------------------- command line and report

SIZE_FLAGS = [  # (flag, default, what it sets)
    ("--batch", 8, "batch size B"),
    ("--vocab-size", 256, "vocabulary size V (256: bytes)"),
    ("--n-embd", 256, "embedding size"),
    ("--n-layer", 4, "blocks"),
    ("--n-head", 4, "attention heads (n_embd / n_head = 64 is GPT-2's head size)"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The model's sizes, its dropout and the matmul sizes of the peak."""
    add_size_flags(
        parser,
        SIZE_FLAGS,
        0.0,
        "embd_pdrop = attn_pdrop = resid_pdrop, active in the timed step; 0 as nanoGPT "
        "pretrains, GPT-2's is 0.1",
    )
    parser.add_argument(
        "--peak-sizes",
        type=int,
        nargs="+",
        default=[2048, 3072, 4096],
        metavar="N",
        help="n of the n×n float32 matmuls that measure the peak (default: 2048 3072 4096)",
    )


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The sizes make a GPT; a bad one exits with status 2 through ``parser.error``."""
    check_size_flags(parser, args, SIZE_FLAGS, ("--n-embd", "--n-head"))
    if any(n < 1 for n in args.peak_sizes):
        parser.error(f"--peak-sizes: expected positive integers, got {args.peak_sizes}")
    if min(args.seq_lens) < 2:
        parser.error(f"--seq-lens: expected lengths >= 2 (a loss needs a next token), "
                     f"got {args.seq_lens}")  # fmt: skip


def count_parameters(case: dict) -> int:
    """N: our GPT's parameters (the tied head once) without the position embedding, as
    nanoGPT's ``get_num_params``; counted on the meta device, nothing is allocated."""
    from transformer.v5_gpt import GPT, GPTConfig

    fields = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
    with torch.device("meta"):
        gpt = GPT(GPTConfig(**{name: case[name] for name in fields}))
    return gpt.num_parameters() - gpt.wpe.weight.numel()


def case_of(args: argparse.Namespace) -> dict:
    """The GPT's settings, for the children and the JSON."""
    case = {
        "batch": args.batch,
        "vocab_size": args.vocab_size,
        "n_positions": max(args.seq_lens),
        "n_embd": args.n_embd,
        "n_layer": args.n_layer,
        "n_head": args.n_head,
        "n_inner": 4 * args.n_embd,
        "dropout": args.dropout,
        "dtype": str(DTYPE),
        "peak_sizes": args.peak_sizes,
        "optimizer": f"torch.optim.AdamW(lr={LEARNING_RATE:g}), torch's default implementation",
        "hf": 'GPT2LMHeadModel._from_config(GPT2Config(...), attn_implementation="sdpa"), '
        "called with use_cache=False; loss from labels=idx (default loss_type)",
        "ours": "transformer.v5_gpt.from_hf_gpt2(the Hugging Face model); loss "
        "F.cross_entropy on the same shifted targets",
        "check": f"before measuring, eval-mode logits agree to max |ours - ref| <= "
        f"{TOLERANCE:g} (each row's max_abs_diff)",
        "flops_per_token": "6*n_params + 12*n_layer*n_embd*T",
        "mfu": "flops_per_token * tokens_per_s / matmul_peak_flops (float32 torch.mm, "
        "best over peak_sizes, measured in the timing process)",
    }
    case["n_params"] = count_parameters(case)
    case["n_params_note"] = "all parameters (tied head once) without the position embedding"
    return case


def describe(case: dict) -> list[str]:
    """The report's lines about the model, the step and the FLOPs."""
    return [
        f"GPT-2 architecture: vocab {case['vocab_size']}, n_embd {case['n_embd']}, "
        f"n_layer {case['n_layer']}, n_head {case['n_head']}, n_inner {case['n_inner']}, "
        f"n_positions {case['n_positions']}; batch B={case['batch']}",
        "references: GPT2LMHeadModel (sdpa) with GPT-2's activation_function 'gelu_new' "
        "(unfused, in Python) and with 'gelu_pytorch_tanh' (fused F.gelu, as ours)",
        f"step = forward + cross-entropy + backward + AdamW, train mode, dropout "
        f"{case['dropout']:g}; first the eval-mode logits were checked to agree "
        f"(max |diff| column, tolerance {TOLERANCE:g})",
        "tok/s = B*T / median step; paired ratio = median over the timed rounds of the "
        "round's reference step / ours (the load changes less within a round)",
        f"MFU = (6N + 12*n_layer*n_embd*T) * tok/s / matmul peak, "
        f"N = {case['n_params']:,} (parameters without the position embedding)",
        "matmul peak = best float32 torch.mm FLOP/s over n = "
        + " ".join(map(str, case["peak_sizes"]))
        + ", measured in the timing process after the timed steps",
    ]


SHARED = {column[0]: column for column in COLUMNS}  # the harness's columns, by title
THROUGHPUT = [  # gpt.py's own columns: (title, the row's field, format)
    ("tok/s", "tokens_per_s", ",.0f"),
    ("ref tok/s", "ref_tokens_per_s", ",.0f"),
    ("tok/s ratio", "tokens_per_s_ratio", ".3f"),
    ("paired ratio", "tokens_per_s_ratio_paired", ".3f"),
    ("MFU", "mfu", ".1%"),
    ("ref MFU", "ref_mfu", ".1%"),
    ("matmul peak (GFLOP/s)", "matmul_peak_gflops", ",.1f"),
]


def field_column(title: str, key: str, spec: str) -> Column:
    """A table column that shows the row's ``key``."""
    return (title, lambda row: row[key], spec)


GPT_COLUMNS: list[Column] = [
    *(SHARED[title] for title in ("device", "T", "reference", "time (ms)", "ref time (ms)")),
    *(field_column(*column) for column in THROUGHPUT),
    *(SHARED[title] for title in ("peak mem (MiB)", "ref peak mem (MiB)", "mem ratio")),
    MAX_DIFF_COLUMN,
]

BENCHMARK = Benchmark(
    script=Path(__file__).resolve(),
    description="Training tokens/s and MFU: our GPT (v5) vs Hugging Face's GPT2LMHeadModel.",
    labels=LABELS,
    pairs=PAIRS,
    build=build_workload,
    case=case_of,
    describe=describe,
    default_seq_lens=[256],
    add_arguments=add_arguments,
    validate=validate,
    tolerance=TOLERANCE,
    columns=GPT_COLUMNS,
    probe=matmul_peak,
    finish_row=finish_row,
    quick={"peak_sizes": [2048]},  # one matmul size for the peak
    step="forward, cross-entropy loss, backward, AdamW step (train mode)",
    ratio_note="tok/s ratio = ours / Hugging Face (above 1: ours is faster); "
    "mem ratio = ours / Hugging Face (below 1: ours needs less)",
)

if __name__ == "__main__":
    main(BENCHMARK)
