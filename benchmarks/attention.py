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

import argparse
import contextlib
import ctypes
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BATCH = 8
EMBED_DIM = 256
NUM_HEADS = 8
HEAD_DIM = EMBED_DIM // NUM_HEADS  # 32
DTYPE = torch.float32
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "attention.json"

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

MEMORY_METHOD = {
    "cpu": "peak RSS increase during one warm forward+backward in a fresh process "
    "(VmHWM after minus VmRSS before, high-water mark reset via /proc/self/clear_refs, "
    "after gc.collect and malloc_trim)",
    "cuda": "torch.cuda.max_memory_allocated after one warm forward+backward minus "
    "torch.cuda.memory_allocated before it, in a fresh process",
}


# ---------------------------------------------------------------- the cases (child side)


@dataclass
class Workload:
    """What one step runs: ``forward`` returns the output, ``leaves`` receive gradients."""

    forward: Callable[[], Tensor]
    leaves: list[Tensor]

    def step(self) -> None:
        """One forward + ``output.sum()`` + backward, starting from empty gradients."""
        for leaf in self.leaves:
            leaf.grad = None
        self.forward().sum().backward()


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

    def forward() -> Tensor:
        return module(x, x, x, need_weights=need_weights)[0]  # (B, T, E)

    return Workload(forward, [x, *module.parameters()])


def build_workload(impl: str, seq_len: int, device: torch.device, seed: int) -> Workload:
    """The seeded inputs (and module) for one implementation."""
    torch.manual_seed(seed)
    if impl in ("v1", "sdpa"):
        return build_heads_workload(impl, seq_len, device)
    return build_module_workload(impl, seq_len, device)


# ---------------------------------------------------------------- measuring (child side)


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


def measure_memory(spec: dict, device: torch.device) -> dict:
    """Peak memory increase of one warm step (and of the cold first step) of one impl."""
    (impl,) = spec["impls"]
    workload = build_workload(impl, spec["seq_len"], device, spec["seed"])
    peak_mib = cuda_peak_mib if device.type == "cuda" else cpu_peak_mib
    cold = peak_mib(workload.step) if spec["warmup"] > 0 else None
    for _ in range(spec["warmup"] - 1):
        workload.step()
    return {impl: {"peak_mib": peak_mib(workload.step), "cold_peak_mib": cold}}


def measure_time(spec: dict, device: torch.device) -> dict:
    """Interleaved step times of the pair (ours, reference), after ``warmup`` steps each."""
    workloads = {
        impl: build_workload(impl, spec["seq_len"], device, spec["seed"]) for impl in spec["impls"]
    }
    for workload in workloads.values():
        for _ in range(spec["warmup"]):
            workload.step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = time_interleaved(workloads, sync, spec)
    return {impl: summarise_times(t) for impl, t in times.items()}


def run_as_child(spec: dict) -> dict:
    """The child process's job: ``spec["mode"]`` is "memory" or "time"."""
    if spec["threads"] is not None:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    measure = measure_memory if spec["mode"] == "memory" else measure_time
    return {"threads": torch.get_num_threads(), **measure(spec, device)}


# ---------------------------------------------------------------- orchestration (parent side)


def run_child(spec: dict) -> dict:
    """Run ``spec`` in a fresh Python process; failures come back as ``{"error": ...}``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--_child", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
        return {"error": f"child exited with status {done.returncode}: {lines[-1]}"}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"child printed no JSON result: {done.stdout.strip()[-200:]!r}"}


def ratio(ours: float | None, reference: float | None) -> float | None:
    """ours / reference, or None when either is missing or the reference is zero."""
    if ours is None or reference is None or reference <= 0:
        return None
    return ours / reference


def make_row(device: str, seq_len: int, pair: tuple[str, str], results: dict) -> dict:
    """One table row: our result next to the reference's, with the ratios."""
    ours, ref = results[pair[0]], results[pair[1]]
    return {
        "device": device,
        "seq_len": seq_len,
        "implementation": LABELS[pair[0]],
        "reference": LABELS[pair[1]],
        "time_ms": ours.get("median_ms"),
        "ref_time_ms": ref.get("median_ms"),
        "time_ratio": ratio(ours.get("median_ms"), ref.get("median_ms")),
        "peak_mib": ours.get("peak_mib"),
        "ref_peak_mib": ref.get("peak_mib"),
        "memory_ratio": ratio(ours.get("peak_mib"), ref.get("peak_mib")),
        "ours": ours,
        "ref": ref,
    }


def measure_pair(
    device: str, seq_len: int, pair: tuple[str, str], args: argparse.Namespace
) -> dict[str, dict]:
    """Memory of each implementation in its own process, then both timed in one process."""
    results: dict[str, dict] = {impl: {} for impl in pair}
    jobs = [("memory", [impl]) for impl in pair] + [("time", list(pair))]
    for mode, impls in jobs:
        started = time.perf_counter()
        answer = run_child(child_spec(mode, device, seq_len, impls, args))
        took = time.perf_counter() - started
        for impl in impls:
            if "error" in answer:
                results[impl].setdefault("errors", []).append(f"{mode}: {answer['error']}")
            else:
                results[impl].update(answer[impl], threads=answer["threads"])
        what = " vs ".join(LABELS[impl] for impl in impls)
        note = answer.get("error", f"{took:.1f} s")
        print(f"  {device} T={seq_len} {mode} {what}: {note}", file=sys.stderr)
    return results


def run_all(devices: list[str], args: argparse.Namespace) -> list[dict]:
    """Every (device, T, pair) row."""
    return [
        make_row(device, seq_len, pair, measure_pair(device, seq_len, pair, args))
        for device in devices
        for seq_len in args.seq_lens
        for pair in PAIRS
    ]


def child_spec(
    mode: str, device: str, seq_len: int, impls: list[str], args: argparse.Namespace
) -> dict:
    """The JSON a child gets: what to measure, on which case, with which settings."""
    return {
        "mode": mode,
        "device": device,
        "seq_len": seq_len,
        "impls": impls,
        "seed": args.seed,
        "threads": args.threads,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "min_repeats": args.min_repeats,
        "budget_s": args.budget,
    }


# ---------------------------------------------------------------- reporting


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, or whatever ``platform`` knows."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_names(devices: list[str]) -> dict[str, str]:
    """A human-readable name per measured device."""
    return {d: torch.cuda.get_device_name() if d == "cuda" else cpu_name() for d in devices}


def fmt(value: float | None, digits: int) -> str:
    """A number for the table, or '-' when missing."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned text table."""
    header = [
        "device",
        "T",
        "implementation",
        "reference",
        "time (ms)",
        "ref time (ms)",
        "time ratio",
        "peak mem (MiB)",
        "ref peak mem (MiB)",
        "mem ratio",
    ]
    cells = [
        [
            r["device"],
            str(r["seq_len"]),
            r["implementation"],
            r["reference"],
            fmt(r["time_ms"], 1),
            fmt(r["ref_time_ms"], 1),
            fmt(r["time_ratio"], 2),
            fmt(r["peak_mib"], 1),
            fmt(r["ref_peak_mib"], 1),
            fmt(r["memory_ratio"], 2),
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    text_columns = 4  # left-aligned; the numbers are right-aligned

    def line(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < text_columns else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *(line(row) for row in cells)])


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON to a temp file next to ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes it 0600; give it a normal file's mode
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------- command line


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (still exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line; ``--_child`` is internal (one measuring process)."""
    parser = OneLineErrorParser(
        description="Time and peak memory of forward+backward: our attention vs PyTorch's.",
    )
    add = parser.add_argument
    add(
        "--seq-lens",
        type=int,
        nargs="+",
        default=[128, 512, 2048],
        metavar="T",
        help="sequence lengths (default: 128 512 2048)",
    )
    add(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto = cpu, plus cuda when available (default: auto)",
    )
    add("--repeats", type=int, default=30, help="most timed steps per implementation (default: 30)")
    add(
        "--min-repeats",
        type=int,
        default=3,
        help="fewest timed steps per implementation, budget or not (default: 3)",
    )
    add(
        "--budget",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="timing budget per implementation and case (default: 2.0)",
    )
    add(
        "--warmup",
        type=int,
        default=1,
        help="untimed steps per implementation before measuring (default: 1)",
    )
    add(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads in the measuring processes (default: torch's choice)",
    )
    add("--seed", type=int, default=0, help="torch.manual_seed for inputs (default: 0)")
    add(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="JSON results file (default: benchmarks/results/attention.json)",
    )
    add("--_child", help=argparse.SUPPRESS)
    return parser  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate; every bad value exits with status 2 through ``parser.error``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args._child is not None:
        return args
    if any(t <= 0 for t in args.seq_lens):
        parser.error(f"--seq-lens: expected positive integers, got {args.seq_lens}")
    for flag, value, least in (
        ("--repeats", args.repeats, 1),
        ("--min-repeats", args.min_repeats, 1),
        ("--warmup", args.warmup, 0),
        ("--threads", args.threads, 1),
    ):
        if value is not None and value < least:
            parser.error(f"{flag}: expected an integer >= {least}, got {value}")
    if not (args.budget >= 0 and math.isfinite(args.budget)):
        parser.error(f"--budget: expected a finite number of seconds >= 0, got {args.budget}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available (torch.cuda.is_available() is False)")
    if args.out.is_dir():
        parser.error(f"--out: expected a file path, got the directory {args.out}")
    return args


def selected_devices(choice: str) -> list[str]:
    """The devices to measure for ``--device``."""
    if choice == "auto":
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    return [choice]


def settings_of(args: argparse.Namespace, devices: list[str], threads: int) -> dict:
    """Everything needed to read (or repeat) the run, for the JSON file."""
    return {
        "batch": BATCH,
        "embed_dim": EMBED_DIM,
        "num_heads": NUM_HEADS,
        "head_dim": HEAD_DIM,
        "dtype": str(DTYPE),
        "seq_lens": args.seq_lens,
        "seed": args.seed,
        "threads": threads,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "min_repeats": args.min_repeats,
        "budget_s": args.budget,
        "step": "forward, output.sum(), backward into inputs and parameters",
        "time": "median ms per step; ours and reference timed in alternating rounds "
        "in one fresh process, time.perf_counter",
        "memory_method": {d: MEMORY_METHOD[d] for d in devices},
        "ratios": "ours / torch reference, measured in the same run",
    }


def print_report(rows: list[dict], names: dict[str, str], threads: int, extra: dict) -> None:
    """The header lines and the table."""
    print(f"torch {torch.__version__}; {threads} threads; {DTYPE}")
    for device, name in names.items():
        print(f"{device}: {name}")
    print(f"B={BATCH}, H={NUM_HEADS}, D={HEAD_DIM} (E={EMBED_DIM}); "
          "step = forward + output.sum() + backward")  # fmt: skip
    print("time = median ms per step; ours and reference alternate in one fresh process")
    for device in names:
        print(f"peak mem ({device}) = {MEMORY_METHOD[device]}")
    load = extra["load_average_1min"]
    print(f"1-min load average {load['before']:.2f} before, {load['after']:.2f} after "
          "(other busy processes on these cores make the times noisy)")  # fmt: skip
    print("ratios = ours / torch reference (below 1: ours is faster / smaller)\n")
    print(format_table(rows))
    print(f"\ntotal wall time {extra['wall_time_s']:.1f} s")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args._child is not None:
        print(json.dumps(run_as_child(json.loads(args._child))))
        return

    devices = selected_devices(args.device)
    names = device_names(devices)
    threads = args.threads or torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, devices {devices}", file=sys.stderr)
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        print(f"warning: 1-min load average is {load_before:.2f} on {os.cpu_count()} CPUs; "
              "other processes will slow and skew the timings (--threads 1 suffers least)",
              file=sys.stderr)  # fmt: skip
    started = time.perf_counter()
    rows = run_all(devices, args)
    extra = {
        "wall_time_s": time.perf_counter() - started,
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
    }
    print_report(rows, names, threads, extra)
    payload = {
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "devices": names,
        "num_threads": threads,
        "settings": settings_of(args, devices, threads),
        **extra,
        "rows": rows,
    }
    write_json_atomic(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
