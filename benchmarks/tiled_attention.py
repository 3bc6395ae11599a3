"""Peak memory and time of forward+backward: v8's tiled attention against SDPA's math backend.

One pair, on the same seeded causal q, k, v of shape (B, H, T, D):

* ``v8 tiled attention`` (``transformer.v8_efficient.tiled_attention``, key blocks of
  ``--block-size``, the backward pass recomputing them);
* ``F.scaled_dot_product_attention`` with the math backend, which builds the (T, T) scores
  (on the CPU the only backend for float32 with gradients; on CUDA chosen explicitly).

Memory is the goal: explicit attention grows with T², tiled attention with T. The table's
peak memory columns give each T's peak, and ``mem growth`` (``memory_growth`` in the JSON)
divides it by the peak at the smallest T: about 8 from 1k to 8k when memory is linear in
T, about 64 when it is quadratic. The method (fresh processes, peak RSS or CUDA peak) is the
shared harness's, described in ``benchmarks/README.md``.

Run from the repository root::

    poetry run python benchmarks/tiled_attention.py            # T = 1k, 2k, 4k, 8k, 16k
    poetry run python benchmarks/tiled_attention.py --quick
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from _harness import Benchmark, Workload, main
from _report import COLUMNS, MAX_DIFF_COLUMN
from torch.nn.attention import SDPBackend, sdpa_kernel

from transformer.cli import positive_int

BATCH, HEADS, HEAD_DIM = 1, 2, 64
DTYPE = torch.float32
LABELS = {"tiled": "v8 tiled attention", "math": "SDPA, math backend"}
PAIRS = [("tiled", "math")]


def build_workload(impl: str, spec: dict, device: torch.device) -> Workload:
    """Causal attention on seeded q, k, v (B, H, T, D); the harness has set the seed."""
    from transformer.v8_efficient import tiled_attention

    shape = (BATCH, HEADS, spec["seq_len"], HEAD_DIM)
    q, k, v = (
        torch.randn(shape, device=device, dtype=DTYPE, requires_grad=True)  # (B, H, T, D)
        for _ in range(3)
    )
    block = spec["case"]["block_size"]
    if impl == "tiled":

        def forward() -> torch.Tensor:
            return tiled_attention(q, k, v, causal=True, block_size=block)  # (B, H, T, D)

    else:

        def forward() -> torch.Tensor:
            with sdpa_kernel(SDPBackend.MATH):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)

    return Workload(forward, [q, k, v], evaluate=lambda: forward().detach())


def add_arguments(parser) -> None:
    parser.add_argument(
        "--block-size", type=positive_int, default=256,
        help="keys per block of the tiled attention (default 256)",
    )  # fmt: skip


def memory_growth(rows: list[dict]) -> None:
    """Each row's peak memory over the same device's smallest T, for both implementations:
    about T / T_min when memory is linear in T, (T / T_min)² when it is quadratic."""
    for row in rows:
        first = min((r for r in rows if r["device"] == row["device"]), key=lambda r: r["seq_len"])
        for key, peak in (("memory_growth", "peak_mib"), ("ref_memory_growth", "ref_peak_mib")):
            ok = row[peak] is not None and first[peak]
            row[key] = row[peak] / first[peak] if ok else None
        row["growth_over_seq_len"] = first["seq_len"]


COLUMNS = [*COLUMNS, MAX_DIFF_COLUMN,
           ("mem growth", lambda r: r.get("memory_growth"), ".1f"),
           ("ref mem growth", lambda r: r.get("ref_memory_growth"), ".1f")]  # fmt: skip


BENCHMARK = Benchmark(
    script=Path(__file__).resolve(),
    description="Peak memory and time of forward+backward: tiled attention vs SDPA's math "
    "backend, causal.",
    labels=LABELS,
    pairs=PAIRS,
    build=build_workload,
    case=lambda args: {
        "batch": BATCH,
        "num_heads": HEADS,
        "head_dim": HEAD_DIM,
        "dtype": str(DTYPE),
        "block_size": args.block_size,
        "causal": True,
    },
    describe=lambda case: [
        f"B={BATCH}, H={HEADS}, D={HEAD_DIM}, causal, key blocks of {case['block_size']}; "
        "step = forward + output.sum() + backward"
    ],
    default_seq_lens=[1024, 2048, 4096, 8192, 16384],
    add_arguments=add_arguments,
    tolerance=1e-4,
    columns=COLUMNS,
    finish_rows=memory_growth,
    quick={"block_size": 128},
)

if __name__ == "__main__":
    main(BENCHMARK)
