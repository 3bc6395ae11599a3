"""Forward+backward time and peak memory of our attention against PyTorch's, side by side.

Three pairs, each ours vs the torch reference it is tested against, with identical inputs
(and, for the modules, identical weights):

* ``v1 attention`` vs ``F.scaled_dot_product_attention`` on q, k, v of shape (B, H, T, D);
* ``v2 MHA`` vs ``nn.MultiheadAttention`` with ``need_weights=True`` (both materialise the
  (B, H, T, T) weights; averaged over heads, the default);
* the same modules with ``need_weights=False`` (both then call the fused SDPA kernel).

One step is forward, ``output.sum()``, backward into the inputs and every parameter.

Method: every measurement runs in a fresh child process (``--_child``), so nothing
inherits another case's allocator state or peak. For each (device, T, pair):

* memory, one process per implementation: build the seeded inputs, run ``--warmup``
  steps (the first, in a cold process, pays one-time costs such as thread pools and kernel
  set-up; its figure is kept in the JSON as ``cold_peak_mib``), then one measured step;
* time, one process for the pair: build both, ``--warmup`` steps each, then timed steps
  in alternating rounds (ours, ref, ref, ours, ...) so both see the same machine load,
  until ``--budget`` seconds per implementation have passed, at least ``--min-repeats``
  and at most ``--repeats`` rounds. Time is the median step (``time.perf_counter``, with
  ``torch.cuda.synchronize`` around each step on CUDA).

Peak memory is the peak *increase* during the measured step over what was in use just
before it, in MiB:

* CPU: resident memory. Before the step: ``gc.collect()``, glibc ``malloc_trim(0)`` (so
  memory freed by the warm-up goes back to the OS instead of being silently reused), then
  ``5`` is written to ``/proc/self/clear_refs``, which resets the peak-RSS high-water mark
  (``VmHWM``, the counter ``ru_maxrss`` reports) to the current RSS. Figure:
  ``VmHWM`` after the step minus ``VmRSS`` before it. The high-water mark is read from
  ``/proc/self/status`` rather than ``getrusage``: a child's ``ru_maxrss`` starts at
  its parent's peak RSS (Linux keeps it across fork and exec), hiding small steps.
  Linux only; elsewhere CPU memory is reported as unavailable.
* CUDA: ``torch.cuda.max_memory_allocated()`` after the step minus
  ``torch.cuda.memory_allocated()`` before it, with ``reset_peak_memory_stats()`` first.

Run from the repository root::

    poetry run python benchmarks/attention.py                 # CPU, plus CUDA if present
    poetry run python benchmarks/attention.py --seq-lens 64 --device cpu
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from _harness import Benchmark, Workload, main
from torch import nn

BATCH = 8
EMBED_DIM = 256
NUM_HEADS = 8
HEAD_DIM = EMBED_DIM // NUM_HEADS  # 32
DTYPE = torch.float32

# implementation key -> label; PAIRS are (ours, reference) in table order
LABELS = {
    "v1": "v1 attention",
    "sdpa": "F.scaled_dot_product_attention",
    "v2_weights": "v2 MHA, need_weights=True",
    "torch_weights": "nn.MultiheadAttention, need_weights=True",
    "v2_fused": "v2 MHA, need_weights=False",
    "torch_fused": "nn.MultiheadAttention, need_weights=False",
}
PAIRS = [("v1", "sdpa"), ("v2_weights", "torch_weights"), ("v2_fused", "torch_fused")]


def build_heads_workload(impl: str, seq_len: int, device: torch.device) -> Workload:
    """v1 attention or SDPA on q, k, v of shape (B, H, T, D)."""
    from transformer.v1_basic_attention import attention

    shape = (BATCH, NUM_HEADS, seq_len, HEAD_DIM)
    q, k, v = (
        torch.randn(shape, device=device, dtype=DTYPE, requires_grad=True)  # (B, H, T, D)
        for _ in range(3)
    )
    if impl == "v1":
        return Workload(lambda: attention(q, k, v)[0], [q, k, v])  # (B, H, T, D)
    return Workload(lambda: F.scaled_dot_product_attention(q, k, v), [q, k, v])  # (B, H, T, D)


def build_module_workload(impl: str, seq_len: int, device: torch.device) -> Workload:
    """Our MultiHeadAttention or nn.MultiheadAttention on self-attention input (B, T, E)."""
    from transformer.v2_multihead import MultiHeadAttention

    reference = nn.MultiheadAttention(EMBED_DIM, NUM_HEADS, batch_first=True, dtype=DTYPE)
    x = torch.randn(BATCH, seq_len, EMBED_DIM, dtype=DTYPE)  # (B, T, E)
    module: nn.Module = reference
    if impl.startswith("v2"):  # built after x, so x and the weights match the reference's
        module = MultiHeadAttention(EMBED_DIM, NUM_HEADS, batch_first=True, dtype=DTYPE)
        module.load_state_dict(reference.state_dict())
    module = module.to(device)
    x = x.to(device).requires_grad_()  # (B, T, E)
    need_weights = impl.endswith("weights")

    def forward() -> torch.Tensor:
        return module(x, x, x, need_weights=need_weights)[0]  # (B, T, E)

    return Workload(forward, [x, *module.parameters()])


def build_workload(impl: str, spec: dict, device: torch.device) -> Workload:
    """The inputs (and module) of one implementation; the harness has set the seed."""
    if impl in ("v1", "sdpa"):
        return build_heads_workload(impl, spec["seq_len"], device)
    return build_module_workload(impl, spec["seq_len"], device)


BENCHMARK = Benchmark(
    script=Path(__file__).resolve(),
    description="Time and peak memory of forward+backward: our attention vs PyTorch's.",
    labels=LABELS,
    pairs=PAIRS,
    build=build_workload,
    case=lambda args: {
        "batch": BATCH,
        "embed_dim": EMBED_DIM,
        "num_heads": NUM_HEADS,
        "head_dim": HEAD_DIM,
        "dtype": str(DTYPE),
    },
    describe=lambda case: [
        f"B={BATCH}, H={NUM_HEADS}, D={HEAD_DIM} (E={EMBED_DIM}); "
        "step = forward + output.sum() + backward"
    ],
    default_seq_lens=[128, 512, 2048],
)

if __name__ == "__main__":
    main(BENCHMARK)
