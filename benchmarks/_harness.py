"""What the side-by-side benchmarks share: a benchmark's description, its children, rows, report.

A benchmark script describes itself as a :class:`Benchmark` (its implementations, the pairs
(ours, reference) to compare, how to build one seeded :class:`Workload`) and calls
:func:`main`. Every measurement runs in a fresh child process: the script runs itself with
``--_child SPEC``. The measuring itself is in ``_measure``, the shared flags in ``_cli``, the
table in ``_report``; the JSON file is written by ``transformer.io.write_json`` (atomic,
fsynced, mode 0644 under umask 022). The method is in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from _cli import parse_args, selected_devices
from _measure import MEMORY_METHOD, Workload, measure_memory, measure_time
from _report import COLUMNS, Column, device_names, format_table

from transformer.io import write_json

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Benchmark:
    """One side-by-side benchmark script.

    ``build(impl, spec, device)`` returns the workload of one implementation for one child
    spec (``spec["seq_len"]``, and the sizes in ``spec["case"]``); the seed is set just
    before. ``case(args)`` gives those sizes (stored in the JSON settings, sent to every
    child); ``describe(case)`` gives the report's lines about them. With ``tolerance``, the
    outputs of each pair (``Workload.evaluate``) must agree within it before anything is
    measured, or the run stops with status 1.

    Optional extras (``gpt.py`` uses them): ``probe(spec, device)`` runs in each timing child
    right after the timed steps (same process, threads and moment) and its dict is kept in
    the row as ``probe``; ``finish_row(row, case)`` adds derived fields to each row, and
    ``finish_rows(rows)`` fields that compare rows (``tiled_attention.py``: memory against T).
    ``step`` and ``ratio_note`` are the JSON's and the report's words for the step and ratios.
    ``quick`` holds what ``--quick`` sets among the script's own flags (by argparse dest), on
    top of the shared ones (``_cli.QUICK`` and the smallest of ``default_seq_lens``).
    """

    script: Path
    description: str
    labels: dict[str, str]  # implementation key -> label
    pairs: list[tuple[str, str]]  # (ours, reference), in table order
    build: Callable[[str, dict, torch.device], Workload]
    case: Callable[[argparse.Namespace], dict]
    describe: Callable[[dict], list[str]]
    default_seq_lens: list[int]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None  # own flags
    validate: Callable[[argparse.ArgumentParser, argparse.Namespace], None] | None = None
    tolerance: float | None = None
    columns: list[Column] = field(default_factory=lambda: list(COLUMNS))
    probe: Callable[[dict, torch.device], dict] | None = None
    finish_row: Callable[[dict, dict], None] | None = None
    finish_rows: Callable[[list[dict]], None] | None = None  # fields that compare rows
    step: str = "forward, output.sum(), backward into inputs and parameters"
    ratio_note: str = "ratios = ours / torch reference (below 1: ours is faster / smaller)"
    quick: dict[str, object] = field(default_factory=dict)

    @property
    def default_out(self) -> Path:
        return RESULTS_DIR / f"{self.script.stem}.json"

    @property
    def quick_out(self) -> Path:
        """Where ``--quick`` writes without ``--out``: never over a full run's results."""
        return RESULTS_DIR / f"{self.script.stem}.quick.json"


# ---------------------------------------------------------------- child side


def build_workload(bench: Benchmark, impl: str, spec: dict, device: torch.device) -> Workload:
    """The seeded inputs (and module) of one implementation."""
    torch.manual_seed(spec["seed"])
    return bench.build(impl, spec, device)


def run_as_child(bench: Benchmark, spec: dict) -> dict:
    """The child process's job: ``spec["mode"]`` is "memory" or "time"."""
    if spec["threads"] is not None:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    workloads = {impl: build_workload(bench, impl, spec, device) for impl in spec["impls"]}
    if spec["mode"] == "memory":
        ((impl, workload),) = workloads.items()
        measured = measure_memory(workload, impl, spec, device)
    else:
        measured = measure_time(workloads, spec, device)
        if bench.probe is not None:
            measured["probe"] = bench.probe(spec, device)
    return {"threads": torch.get_num_threads(), **measured}


# ---------------------------------------------------------------- orchestration (parent side)


def run_child(script: Path, spec: dict) -> dict:
    """Run ``spec`` in a fresh Python process; failures come back as ``{"error": ...}``."""
    command = [sys.executable, str(script), "--_child", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
        return {"error": f"child exited with status {done.returncode}: {lines[-1]}"}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"child printed no JSON result: {done.stdout.strip()[-200:]!r}"}


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
        "case": args.case,
    }


def ratio(ours: float | None, reference: float | None) -> float | None:
    """ours / reference, or None when either is missing or the reference is zero."""
    if ours is None or reference is None or reference <= 0:
        return None
    return ours / reference


def add_tokens_per_s(row: dict, case: dict) -> None:
    """A ``finish_row`` for steps of ``case["batch"]`` × T tokens: each side's tokens/s
    (B·T / its median step) and their ratio ours / reference (above 1: ours is faster)."""
    tokens = case["batch"] * row["seq_len"]
    for side in ("", "ref_"):
        ms = row[f"{side}time_ms"]
        row[f"{side}tokens_per_s"] = tokens / (ms / 1e3) if ms else None
    row["tokens_per_s_ratio"] = ratio(row["tokens_per_s"], row["ref_tokens_per_s"])


def make_row(
    labels: dict[str, str], device: str, seq_len: int, pair: tuple[str, str], results: dict
) -> dict:
    """One table row: our result next to the reference's, with the ratios."""
    ours, ref = results[pair[0]], results[pair[1]]
    return {
        "device": device,
        "seq_len": seq_len,
        "implementation": labels[pair[0]],
        "reference": labels[pair[1]],
        "implementation_key": pair[0],
        "reference_key": pair[1],
        "time_ms": ours.get("median_ms"),
        "ref_time_ms": ref.get("median_ms"),
        "time_ratio": ratio(ours.get("median_ms"), ref.get("median_ms")),
        "peak_mib": ours.get("peak_mib"),
        "ref_peak_mib": ref.get("peak_mib"),
        "memory_ratio": ratio(ours.get("peak_mib"), ref.get("peak_mib")),
        "ours": ours,
        "ref": ref,
        **({"probe": results["probe"]} if "probe" in results else {}),
    }


def measure_pair(
    bench: Benchmark, device: str, seq_len: int, pair: tuple[str, str], args: argparse.Namespace
) -> dict[str, dict]:
    """Memory of each implementation in its own process, then both timed in one process
    (and the timing child's ``probe``, if any, kept as ``results["probe"]``)."""
    results: dict[str, dict] = {impl: {} for impl in pair}
    jobs = [("memory", [impl]) for impl in pair] + [("time", list(pair))]
    for mode, impls in jobs:
        started = time.perf_counter()
        answer = run_child(bench.script, child_spec(mode, device, seq_len, impls, args))
        took = time.perf_counter() - started
        for impl in impls:
            if "error" in answer:
                results[impl].setdefault("errors", []).append(f"{mode}: {answer['error']}")
            else:
                results[impl].update(answer[impl], threads=answer["threads"])
        if "probe" in answer:
            results["probe"] = answer["probe"]
        what = " vs ".join(bench.labels[impl] for impl in impls)
        note = answer.get("error", f"{took:.1f} s")
        print(f"  {device} T={seq_len} {mode} {what}: {note}", file=sys.stderr)
    return results


def check_outputs(bench: Benchmark, devices: list[str], args: argparse.Namespace) -> dict:
    """Max |ours - reference| of each (device, T, pair)'s ``evaluate`` outputs; exits 1
    when one is above ``bench.tolerance``."""
    diffs = {}
    for device in devices:
        for seq_len in args.seq_lens:
            spec = child_spec("check", device, seq_len, [], args)
            for pair in bench.pairs:
                ours, ref = (
                    build_workload(bench, impl, spec, torch.device(device)).evaluate()
                    for impl in pair
                )
                diff = (ours - ref).abs().max().item()
                diffs[device, seq_len, pair] = diff
                if not diff <= bench.tolerance:  # also catches nan
                    sys.exit(f"{bench.script.name}: error: outputs differ on {device}, "
                             f"T={seq_len}: max |{bench.labels[pair[0]]} - "
                             f"{bench.labels[pair[1]]}| = {diff:.3g} > {bench.tolerance:g}; "
                             "nothing measured")  # fmt: skip
    return diffs


def run_all(bench: Benchmark, devices: list[str], args: argparse.Namespace) -> list[dict]:
    """Every (device, T, pair) row; with a tolerance, the outputs are checked first."""
    diffs = check_outputs(bench, devices, args) if bench.tolerance is not None else {}
    rows = []
    for device in devices:
        for seq_len in args.seq_lens:
            for pair in bench.pairs:
                results = measure_pair(bench, device, seq_len, pair, args)
                rows.append(make_row(bench.labels, device, seq_len, pair, results))
                if diffs:
                    rows[-1]["max_abs_diff"] = diffs[device, seq_len, pair]
                if bench.finish_row is not None:
                    bench.finish_row(rows[-1], args.case)
    if bench.finish_rows is not None:
        bench.finish_rows(rows)
    return rows


# ---------------------------------------------------------------- reporting


def settings_of(
    bench: Benchmark, args: argparse.Namespace, devices: list[str], threads: int
) -> dict:
    """Everything needed to read (or repeat) the run, for the JSON file."""
    return {
        **args.case,
        "quick": args.quick,
        "seq_lens": args.seq_lens,
        "seed": args.seed,
        "threads": threads,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "min_repeats": args.min_repeats,
        "budget_s": args.budget,
        "step": bench.step,
        "time": "median ms per step; ours and reference timed in alternating rounds "
        "in one fresh process, time.perf_counter",
        "memory_method": {d: MEMORY_METHOD[d] for d in devices},
        "ratios": "ours / torch reference, measured in the same run",
    }


def print_report(
    bench: Benchmark, args: argparse.Namespace, rows: list[dict], names: dict, extra: dict
) -> None:
    """The header lines and the table."""
    print(f"torch {torch.__version__}; {extra['threads']} threads; {args.case['dtype']}")
    for device, name in names.items():
        print(f"{device}: {name}")
    for line in bench.describe(args.case):
        print(line)
    print("time = median ms per step; ours and reference alternate in one fresh process")
    for device in names:
        print(f"peak mem ({device}) = {MEMORY_METHOD[device]}")
    load = extra["load_average_1min"]
    print(f"1-min load average {load['before']:.2f} before, {load['after']:.2f} after "
          "(other busy processes on these cores make the times noisy)")  # fmt: skip
    if args.quick:
        print("quick run (--quick): for trying the command, not for the tables")
    if args.warmup == 0:
        print("--warmup 0: the memory step is each implementation's cold first step")
    print(f"{bench.ratio_note}\n")
    print(format_table(rows, bench.columns))
    print(f"\ntotal wall time {extra['wall_time_s']:.1f} s")


def main(bench: Benchmark, argv: list[str] | None = None) -> None:
    """Parse the command line; then measure one child's case, or run the whole benchmark."""
    args = parse_args(bench, argv)
    if args._child is not None:
        print(json.dumps(run_as_child(bench, json.loads(args._child))))
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
    rows = run_all(bench, devices, args)
    extra = {
        "wall_time_s": time.perf_counter() - started,
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
    }
    print_report(bench, args, rows, names, {**extra, "threads": threads})
    payload = {
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "devices": names,
        "num_threads": threads,
        "settings": settings_of(bench, args, devices, threads),
        **extra,
        "rows": rows,
    }
    write_json(args.out, payload)
    print(f"wrote {args.out}")
