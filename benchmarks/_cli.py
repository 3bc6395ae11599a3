"""The command line the side-by-side benchmarks share, plus each script's own flags.

Every bad value exits with status 2 and a one-line message, before anything is measured
(``transformer.cli.OneLineParser``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from transformer.cli import OneLineParser, check_writable, seed

if TYPE_CHECKING:
    from _harness import Benchmark

# what --quick sets, unless the flag is given: few short rounds, no warm-up (and the
# smallest T, plus each script's own ``Benchmark.quick``)
QUICK = {"repeats": 3, "budget": 0.2, "warmup": 0}


def quick_values(bench: Benchmark) -> dict[str, object]:
    """Every flag's value under ``--quick`` (by argparse dest), the script's own included."""
    return {"seq_lens": [min(bench.default_seq_lens)], **QUICK, **bench.quick}


def quick_help(bench: Benchmark) -> str:
    """The ``--quick`` line of ``--help``: what it sets and where the results go."""
    flags = ", ".join(
        f"--{dest.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for dest, v in quick_values(bench).items()
    )
    return (
        f"a short run to try the command, not for the tables: {flags}, unless given; "
        f"records quick: true in the JSON and writes to benchmarks/results/"
        f"{bench.quick_out.name} unless --out is given, so a full run's results stay"
    )


def build_parser(bench: Benchmark) -> argparse.ArgumentParser:
    """The shared command line, then the script's own flags; ``--_child`` is internal."""
    parser = OneLineParser(description=bench.description)
    add = parser.add_argument
    seq_lens = " ".join(map(str, bench.default_seq_lens))
    add(
        "--seq-lens",
        type=int,
        nargs="+",
        default=bench.default_seq_lens,
        metavar="T",
        help=f"sequence lengths (default: {seq_lens})",
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
    add(
        "--seed",
        type=seed,
        default=0,
        help="torch.manual_seed for inputs, in [0, 2**32) (default: 0)",
    )
    add(
        "--out",
        type=Path,
        default=None,
        help=f"JSON results file (default: benchmarks/results/{bench.default_out.name}; "
        f"with --quick, {bench.quick_out.name})",
    )
    add("--quick", action="store_true", help=quick_help(bench))
    if bench.add_arguments is not None:
        bench.add_arguments(parser)
    add("--_child", help=argparse.SUPPRESS)
    return parser  # fmt: skip


def parse_args(bench: Benchmark, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate; every bad value exits with status 2 through ``parser.error``."""
    parser = build_parser(bench)
    quick = quick_values(bench)
    full = {dest: parser.get_default(dest) for dest in quick}
    # the flags --quick sets default to None here, so that one given explicitly wins
    parser.set_defaults(**dict.fromkeys(quick))
    args = parser.parse_args(argv)
    if args._child is not None:
        return args
    for dest, value in (quick if args.quick else full).items():
        if getattr(args, dest) is None:
            setattr(args, dest, value)
    if args.out is None:
        args.out = bench.quick_out if args.quick else bench.default_out
    reason = out_problem(args.out)
    if reason is not None:
        parser.error(reason)
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
    if bench.validate is not None:
        bench.validate(parser, args)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available (torch.cuda.is_available() is False)")
    args.case = bench.case(args)
    return args


def out_problem(out: Path) -> str | None:
    """Why the results file ``out`` (``--out``) could not be written, or None; checked
    before anything is measured, so a bad path does not cost a whole run."""
    if out.is_dir():
        return f"--out: expected a file path, got the directory {out}"
    if out.is_symlink() and not out.exists():
        return f"--out: expected a file path, got {out}, a dangling symlink"
    return check_writable(out.parent, "--out")


# a model's size flag: (flag, default, what it sets); its value is an integer >= 1
SizeFlag = tuple[str, int, str]


def add_size_flags(
    parser: argparse.ArgumentParser, flags: list[SizeFlag], dropout: float, dropout_help: str
) -> None:
    """A script's own integer size flags, and ``--dropout`` with its default."""
    for flag, default, what in flags:
        parser.add_argument(flag, type=int, default=default, help=f"{what} (default: {default})")
    parser.add_argument(
        "--dropout", type=float, default=dropout, help=f"{dropout_help} (default: {dropout:g})"
    )


def check_size_flags(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    flags: list[SizeFlag],
    multiple: tuple[str, str],
) -> None:
    """Exit 2 unless every size flag is >= 1, ``multiple[0]`` is a multiple of ``multiple[1]``
    (the embedding size and the head count) and ``--dropout`` is a probability in [0, 1)."""

    def value(flag: str) -> int:
        return getattr(args, flag[2:].replace("-", "_"))

    for flag, _, _ in flags:
        if value(flag) < 1:
            parser.error(f"{flag}: expected an integer >= 1, got {value(flag)}")
    size, parts = multiple
    if value(size) % value(parts):
        parser.error(f"{size}: expected a multiple of {parts}={value(parts)}, got {value(size)}")
    if not 0 <= args.dropout < 1:
        parser.error(f"--dropout: expected a probability in [0, 1), got {args.dropout}")


def selected_devices(choice: str) -> list[str]:
    """The devices to measure for ``--device``."""
    if choice == "auto":
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    return [choice]
