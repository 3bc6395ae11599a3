"""Measuring inside one benchmark child process: peak memory and interleaved step times.

Shared by the benchmark scripts through ``_harness``; see ``benchmarks/README.md`` ("How it
measures") for the method. Everything here runs in a fresh process that measures one case.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

MEMORY_METHOD = {
    "cpu": "peak RSS increase during one warm step (see step) in a fresh process "
    "(VmHWM after minus VmRSS before, high-water mark reset via /proc/self/clear_refs, "
    "after gc.collect and malloc_trim)",
    "cuda": "torch.cuda.max_memory_allocated after one warm step (see step) minus "
    "torch.cuda.memory_allocated before it, in a fresh process",
}


@dataclass
class Workload:
    """What one step runs: ``forward`` returns the output, ``leaves`` receive gradients.

    ``evaluate``, where given, returns the output to compare with the reference's before
    anything is measured (for modules: in eval mode, so dropout is off).
    """

    forward: Callable[[], Tensor]
    leaves: list[Tensor]
    evaluate: Callable[[], Tensor] | None = None

    def step(self) -> None:
        """One forward + ``output.sum()`` + backward, starting from empty gradients."""
        for leaf in self.leaves:
            leaf.grad = None
        self.forward().sum().backward()


# ---------------------------------------------------------------- memory


def read_proc_status_kib(field: str) -> int:
    """A ``VmRSS``/``VmHWM`` style field of /proc/self/status, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line")


def release_free_memory() -> None:
    """Collect garbage and hand glibc's free heap pages back to the OS."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def reset_rss_peak() -> bool:
    """Reset the peak-RSS mark to the current RSS (Linux); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        read_proc_status_kib("VmHWM")
    except (OSError, RuntimeError):
        return False
    return True


def cpu_peak_mib(step: Callable[[], None]) -> float | None:
    """Peak RSS increase in MiB while ``step`` runs; None off Linux."""
    release_free_memory()
    if not reset_rss_peak():
        step()
        return None
    before = read_proc_status_kib("VmRSS")
    step()
    return (read_proc_status_kib("VmHWM") - before) / 1024


def cuda_peak_mib(step: Callable[[], None]) -> float:
    """Peak increase of CUDA memory allocated by tensors, in MiB, while ``step`` runs."""
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def measure_memory(workload: Workload, impl: str, spec: dict, device: torch.device) -> dict:
    """Peak memory increase of one warm step (and of the cold first step) of one impl."""
    peak_mib = cuda_peak_mib if device.type == "cuda" else cpu_peak_mib
    cold = peak_mib(workload.step) if spec["warmup"] > 0 else None
    for _ in range(spec["warmup"] - 1):
        workload.step()
    return {impl: {"peak_mib": peak_mib(workload.step), "cold_peak_mib": cold}}


# ---------------------------------------------------------------- time


def time_interleaved(
    workloads: dict[str, Workload], sync: Callable[[], None], spec: dict
) -> dict[str, list[float]]:
    """Seconds per step for each workload, timed in alternating rounds.

    Each round times every workload once (the order flips every round), so ours and the
    reference see the same machine conditions. Rounds go on until ``repeats``, or until
    ``min_repeats`` are done and ``budget_s`` per workload has passed.
    """
    times: dict[str, list[float]] = {name: [] for name in workloads}
    budget_s = spec["budget_s"] * len(workloads)
    min_rounds = min(spec["min_repeats"], spec["repeats"])
    started = time.perf_counter()
    for done in range(spec["repeats"]):
        if done >= min_rounds and time.perf_counter() - started >= budget_s:
            break
        names = list(workloads) if done % 2 == 0 else list(reversed(workloads))
        for name in names:
            sync()
            t0 = time.perf_counter()
            workloads[name].step()
            sync()
            times[name].append(time.perf_counter() - t0)
    return times


def summarise_times(times: list[float]) -> dict:
    """Median, min, max and all the step times, in ms."""
    return {
        "median_ms": 1e3 * statistics.median(times),
        "min_ms": 1e3 * min(times),
        "max_ms": 1e3 * max(times),
        "repeats": len(times),
        "times_ms": [1e3 * t for t in times],
    }


def measure_time(workloads: dict[str, Workload], spec: dict, device: torch.device) -> dict:
    """Interleaved step times of the pair (ours, reference), after ``warmup`` steps each."""
    for workload in workloads.values():
        for _ in range(spec["warmup"]):
            workload.step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = time_interleaved(workloads, sync, spec)
    return {impl: summarise_times(t) for impl, t in times.items()}
