"""The command line the side-by-side benchmarks share, plus each script's own flags.

Every bad value exits with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import torch

if TYPE_CHECKING:
    from _harness import Benchmark


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (still exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(bench: Benchmark) -> argparse.ArgumentParser:
    """The shared command line, then the script's own flags; ``--_child`` is internal."""
    parser = OneLineErrorParser(description=bench.description)
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
    add("--seed", type=int, default=0, help="torch.manual_seed for inputs (default: 0)")
    add(
        "--out",
        type=Path,
        default=bench.default_out,
        help=f"JSON results file (default: benchmarks/results/{bench.default_out.name})",
    )
    if bench.add_arguments is not None:
        bench.add_arguments(parser)
    add("--_child", help=argparse.SUPPRESS)
    return parser  # fmt: skip


def parse_args(bench: Benchmark, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate; every bad value exits with status 2 through ``parser.error``."""
    parser = build_parser(bench)
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
    if bench.validate is not None:
        bench.validate(parser, args)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available (torch.cuda.is_available() is False)")
    if args.out.is_dir():
        parser.error(f"--out: expected a file path, got the directory {args.out}")
    args.case = bench.case(args)
    return args


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
