"""Generation tokens/s: v8's key/value cache against no cache, and against Hugging Face.

Three implementations write the same greedy tokens from the same GPT-2 weights (a
``GPT2LMHeadModel`` built offline, ``attn_implementation="sdpa"``; ours converted with
``from_hf_gpt2`` and ``EfficientGPT.from_model``):

* ``v8 cache``: ``EfficientGPT.generate(..., use_cache=True)``;
* ``no cache``: the same model with ``use_cache=False`` (v5's loop: every step reruns the
  whole text);
* ``HF generate``: ``GPT2LMHeadModel.generate(..., use_cache=True, do_sample=False)``.

``T`` is the number of new tokens, after a prompt of ``--prompt`` tokens. The step is one
whole generation; tok/s = B·T / its median time. Before anything is measured, the tokens
of each pair must be identical (max |diff| 0). Method and flags: ``benchmarks/README.md``.

Run from the repository root::

    poetry run python benchmarks/generation.py --threads 1     # T = 64 128 256 512
    poetry run python benchmarks/generation.py --quick
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
from _cli import add_size_flags, check_size_flags
from _harness import Benchmark, Workload, add_tokens_per_s, main
from _report import COLUMNS, MAX_DIFF_COLUMN

DTYPE = torch.float32
LABELS = {"cache": "v8 cache", "nocache": "no cache", "hf": "HF generate, cache"}
PAIRS = [("cache", "nocache"), ("cache", "hf")]


@dataclass
class Generation(Workload):
    """One whole generation: ``forward`` returns the tokens; nothing is differentiated."""

    def step(self) -> None:
        self.forward()


def build_workload(impl: str, spec: dict, device: torch.device) -> Generation:
    """A random GPT-2 (ours or Hugging Face's) and a seeded prompt (B, prompt)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging

    from transformer.v5_gpt import from_hf_gpt2
    from transformer.v8_efficient import EfficientGPT

    logging.set_verbosity_error()
    case, new = spec["case"], spec["seq_len"]
    config = GPT2Config(
        vocab_size=case["vocab_size"], n_positions=case["n_positions"], n_embd=case["n_embd"],
        n_layer=case["n_layer"], n_head=case["n_head"], embd_pdrop=0.0, attn_pdrop=0.0,
        resid_pdrop=0.0, bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    reference = GPT2LMHeadModel._from_config(config, attn_implementation="sdpa").eval()
    prompt = torch.randint(case["vocab_size"], (case["batch"], case["prompt"]))  # (B, P)
    model = reference if impl == "hf" else EfficientGPT.from_model(from_hf_gpt2(reference))
    model = model.to(device=device, dtype=DTYPE).eval()
    prompt = prompt.to(device)  # (B, P)

    if impl == "hf":

        def forward() -> torch.Tensor:
            with torch.no_grad():
                return model.generate(
                    prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new,
                    min_new_tokens=new, do_sample=False, pad_token_id=0, use_cache=True,
                )  # (B, P + T)  # fmt: skip

    else:
        use_cache = impl == "cache"

        def forward() -> torch.Tensor:
            return model.generate(prompt, new, temperature=0, use_cache=use_cache)  # (B, P + T)

    return Generation(forward, [], evaluate=lambda: forward().float())


SIZE_FLAGS = [  # (flag, default, what it sets)
    ("--batch", 1, "rows generated together"),
    ("--prompt", 16, "prompt tokens before the T new ones"),
    ("--vocab-size", 256, "vocabulary size V"),
    ("--n-embd", 256, "embedding size"),
    ("--n-layer", 4, "blocks"),
    ("--n-head", 4, "attention heads"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_size_flags(parser, SIZE_FLAGS, 0.0, "unused: generation runs in eval mode")


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    check_size_flags(parser, args, SIZE_FLAGS, ("--n-embd", "--n-head"))


def case_of(args: argparse.Namespace) -> dict:
    return {
        "batch": args.batch,
        "prompt": args.prompt,
        "vocab_size": args.vocab_size,
        "n_positions": args.prompt + max(args.seq_lens),
        "n_embd": args.n_embd,
        "n_layer": args.n_layer,
        "n_head": args.n_head,
        "dtype": str(DTYPE),
        "decoding": "greedy (temperature=0 / do_sample=False)",
    }


def describe(case: dict) -> list[str]:
    return [
        f"GPT-2 architecture: vocab {case['vocab_size']}, n_embd {case['n_embd']}, n_layer "
        f"{case['n_layer']}, n_head {case['n_head']}; batch B={case['batch']}, prompt "
        f"{case['prompt']} tokens, T = new tokens (greedy)",
        "step = one whole generation; tok/s = B*T / median step; tok/s ratio = ours / "
        "reference (above 1: ours is faster)",
    ]


SHARED = {column[0]: column for column in COLUMNS}
GENERATION_COLUMNS = [
    *(SHARED[title] for title in ("device", "T", "implementation", "reference")),
    *(SHARED[title] for title in ("time (ms)", "ref time (ms)")),
    ("tok/s", lambda r: r["tokens_per_s"], ",.0f"),
    ("ref tok/s", lambda r: r["ref_tokens_per_s"], ",.0f"),
    ("tok/s ratio", lambda r: r["tokens_per_s_ratio"], ".2f"),
    *(SHARED[title] for title in ("peak mem (MiB)", "ref peak mem (MiB)")),
    MAX_DIFF_COLUMN,
]

BENCHMARK = Benchmark(
    script=Path(__file__).resolve(),
    description="Generation tokens/s: v8's key/value cache vs no cache and vs Hugging Face's "
    "generate with its cache, GPT-2 weights, greedy.",
    labels=LABELS,
    pairs=PAIRS,
    build=build_workload,
    case=case_of,
    describe=describe,
    default_seq_lens=[64, 128, 256, 512],
    add_arguments=add_arguments,
    validate=validate,
    tolerance=0.0,
    columns=GENERATION_COLUMNS,
    finish_row=add_tokens_per_s,
    step="one whole greedy generation of T new tokens (eval mode, no gradients)",
    ratio_note="tok/s ratio = ours / reference (above 1: ours is faster)",
)

if __name__ == "__main__":
    main(BENCHMARK)
