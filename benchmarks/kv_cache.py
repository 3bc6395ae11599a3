"""Key/value cache memory per token, and generation time, for MHA, GQA and MQA.

Three Llama-shaped v8 decoders (``ModernConfig.llama``: RoPE, RMSNorm, SwiGLU) with the
same sizes and ``n_head`` query heads differ only in their key/value heads: ``n_head``
(multi-head attention, MHA), ``n_head / 4`` (grouped-query, GQA) and 1 (multi-query,
MQA). Each generates T tokens greedily with its cache. Two pairs, GQA against MHA and MQA
against MHA.

* ``cache KiB/token``: the bytes of every key and value tensor the cache holds after
  the T tokens (``KVCache.nbytes``), divided by the tokens it holds; measured in the timing
  process after the timed steps (the harness's probe);
* ``peak mem``: the peak RSS increase of one whole generation (the cache, the model's
  activations and the allocator's slack), as in every benchmark here.

The models have different weights (a different number of them), so their tokens are not
compared. Method and flags: ``benchmarks/README.md``.

Run from the repository root::

    poetry run python benchmarks/kv_cache.py --threads 1    # T = 256 1024, about 6 minutes
    poetry run python benchmarks/kv_cache.py --quick
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _cli import add_size_flags, check_size_flags
from _harness import Benchmark, main, ratio
from _report import COLUMNS
from generation import Generation

DTYPE = torch.float32
LABELS = {"mha": "MHA", "gqa": "GQA", "mqa": "MQA"}
PAIRS = [("gqa", "mha"), ("mqa", "mha")]
PROMPT = 8


def kv_heads(impl: str, n_head: int) -> int:
    return {"mha": n_head, "gqa": max(1, n_head // 4), "mqa": 1}[impl]


def build_model(impl: str, case: dict, device: torch.device):
    from transformer.v7_modern import ModernConfig
    from transformer.v8_efficient import EfficientGPT

    config = ModernConfig.llama(
        vocab_size=case["vocab_size"], n_positions=case["n_positions"], n_embd=case["n_embd"],
        n_layer=case["n_layer"], n_head=case["n_head"],
        n_kv_head=kv_heads(impl, case["n_head"]),
    )  # fmt: skip
    return EfficientGPT(config).to(device=device, dtype=DTYPE).eval()


def build_workload(impl: str, spec: dict, device: torch.device) -> Generation:
    """One greedy generation of T tokens after a seeded prompt, with the cache."""
    case, new = spec["case"], spec["seq_len"]
    model = build_model(impl, case, device)
    prompt = torch.randint(case["vocab_size"], (case["batch"], PROMPT), device=device)

    def forward() -> torch.Tensor:
        return model.generate(prompt, new, temperature=0)  # (B, P + T)

    return Generation(forward, [])


def cache_per_token(spec: dict, device: torch.device) -> dict:
    """Bytes per cached token of each implementation of the pair, after T + P tokens."""
    measured = {}
    for impl in spec["impls"]:
        torch.manual_seed(spec["seed"])
        model = build_model(impl, spec["case"], device)
        cache = model.new_cache()
        tokens = torch.randint(spec["case"]["vocab_size"], (spec["case"]["batch"], PROMPT))
        with torch.no_grad():
            model.decode(tokens.to(device), cache)
            for _ in range(spec["seq_len"] - 1):
                model.decode(tokens[:, -1:].to(device), cache)
        measured[impl] = cache.nbytes() / cache.length / spec["case"]["batch"]
    return {"cache_bytes_per_token": measured}


def finish_row(row: dict, case: dict) -> None:
    per_token = row.get("probe", {}).get("cache_bytes_per_token", {})
    ours, ref = (per_token.get(k) for k in (row["implementation_key"], row["reference_key"]))
    row["cache_kib_per_token"] = None if ours is None else ours / 1024
    row["ref_cache_kib_per_token"] = None if ref is None else ref / 1024
    row["cache_ratio"] = ratio(ours, ref)
    row["kv_heads"] = kv_heads(row["implementation_key"], case["n_head"])
    row["ref_kv_heads"] = kv_heads(row["reference_key"], case["n_head"])


SIZE_FLAGS = [
    ("--batch", 1, "rows generated together"),
    ("--vocab-size", 256, "vocabulary size V"),
    ("--n-embd", 512, "embedding size"),
    ("--n-layer", 4, "blocks"),
    ("--n-head", 8, "query heads (GQA has n_head / 4 key/value heads, MQA one)"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_size_flags(parser, SIZE_FLAGS, 0.0, "unused: generation runs in eval mode")


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    check_size_flags(parser, args, SIZE_FLAGS, ("--n-embd", "--n-head"))


def case_of(args: argparse.Namespace) -> dict:
    return {
        "batch": args.batch,
        "vocab_size": args.vocab_size,
        "n_positions": PROMPT + max(args.seq_lens),
        "n_embd": args.n_embd,
        "n_layer": args.n_layer,
        "n_head": args.n_head,
        "head_dim": args.n_embd // args.n_head,
        "prompt": PROMPT,
        "dtype": str(DTYPE),
        "model": "ModernConfig.llama (RoPE, RMSNorm, SwiGLU), random weights",
    }


def describe(case: dict) -> list[str]:
    return [
        f"Llama-shaped v8 decoder: n_embd {case['n_embd']}, n_layer {case['n_layer']}, "
        f"{case['n_head']} query heads of {case['head_dim']}; key/value heads MHA "
        f"{case['n_head']}, GQA {max(1, case['n_head'] // 4)}, MQA 1; batch {case['batch']}",
        "step = one greedy generation of T tokens with the cache; cache KiB/token = "
        "KVCache.nbytes() / cached tokens / batch",
    ]


SHARED = {column[0]: column for column in COLUMNS}
CACHE_COLUMNS = [
    *(SHARED[title] for title in ("device", "T", "implementation", "reference")),
    ("cache KiB/token", lambda r: r["cache_kib_per_token"], ".1f"),
    ("ref cache KiB/token", lambda r: r["ref_cache_kib_per_token"], ".1f"),
    ("cache ratio", lambda r: r["cache_ratio"], ".3f"),
    *(SHARED[title] for title in ("time (ms)", "ref time (ms)", "time ratio")),
    *(SHARED[title] for title in ("peak mem (MiB)", "ref peak mem (MiB)", "mem ratio")),
]

BENCHMARK = Benchmark(
    script=Path(__file__).resolve(),
    description="Key/value cache bytes per token and generation time: GQA and MQA vs MHA.",
    labels=LABELS,
    pairs=PAIRS,
    build=build_workload,
    case=case_of,
    describe=describe,
    default_seq_lens=[256, 1024],
    add_arguments=add_arguments,
    validate=validate,
    columns=CACHE_COLUMNS,
    probe=cache_per_token,
    finish_row=finish_row,
    step="one whole greedy generation of T tokens with the cache (eval mode)",
    ratio_note="ratios = ours / MHA (below 1: smaller / faster)",
)

if __name__ == "__main__":
    main(BENCHMARK)
