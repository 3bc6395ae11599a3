"""Reporting for the side-by-side benchmarks: device names and the text table.

The JSON file is written by ``transformer.io.write_json`` (atomic, fsynced, normal mode).
"""

from __future__ import annotations

import contextlib
import math
import platform
from collections.abc import Callable

import torch

# a table column: (header, value of a row, format spec; None for a left-aligned text column)
Column = tuple[str, Callable[[dict], object], str | None]
COLUMNS: list[Column] = [
    ("device", lambda r: r["device"], None),
    ("T", lambda r: str(r["seq_len"]), None),
    ("implementation", lambda r: r["implementation"], None),
    ("reference", lambda r: r["reference"], None),
    ("time (ms)", lambda r: r["time_ms"], ".1f"),
    ("ref time (ms)", lambda r: r["ref_time_ms"], ".1f"),
    ("time ratio", lambda r: r["time_ratio"], ".2f"),
    ("peak mem (MiB)", lambda r: r["peak_mib"], ".1f"),
    ("ref peak mem (MiB)", lambda r: r["ref_peak_mib"], ".1f"),
    ("mem ratio", lambda r: r["memory_ratio"], ".2f"),
]
# for benchmarks with a tolerance: the outputs' max |ours - reference|, checked before measuring
MAX_DIFF_COLUMN: Column = ("max |diff| eval", lambda r: r.get("max_abs_diff"), ".1e")


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


def fmt(value: object, spec: str | None) -> str:
    """A table cell: text as it is; a number in ``spec``, or '-' when missing."""
    if spec is None:
        return str(value)
    if value is None or math.isnan(value):
        return "-"
    return format(value, spec)


def format_table(rows: list[dict], columns: list[Column]) -> str:
    """The rows as an aligned text table; text columns left-aligned, numbers right-aligned."""
    header = [title for title, _, _ in columns]
    cells = [[fmt(value(r), spec) for _, value, spec in columns] for r in rows]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    is_text = [spec is None for _, _, spec in columns]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if text else c.rjust(w)
            for c, w, text in zip(row, widths, is_text, strict=True)
        )

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *(line(row) for row in cells)])
