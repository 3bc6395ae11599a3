"""What every command line in the project shares: one-line errors, flag types, the device.

A bad flag or value exits with status 2 and one line, ``prog: error: --flag: expected ...,
got ...``, before any work is done.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

import torch

SEED_LIMIT = 2**32  # seeds are offset by small constants; this keeps every one in range


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag prints one line (no usage block) and exits with status 2."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def seed(text: str) -> int:
    """An argparse type: a random seed, an integer in [0, 2**32)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"expected a seed in [0, 2**32), got {value}")
    return value


def add_seed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed", type=seed, default=0, help="random seed in [0, 2**32) (default 0)"
    )


def add_num_seeds(parser: argparse.ArgumentParser, default: int, what: str) -> None:
    """``--num-seeds``: train ``what`` from seeds --seed, --seed+1, ..."""
    parser.add_argument(
        "--num-seeds", type=positive_int, default=default,
        help=f"train {what} from seeds --seed, --seed+1, ... (default {default})",
    )  # fmt: skip


MAX_SEEDS = 1000  # each seed is a whole training run: more is a typo, not a plan


def seeds_of(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[int]:
    """The seeds ``--seed`` and ``--num-seeds`` ask for; a one-line error past 2**32 or for
    more than ``MAX_SEEDS`` runs."""
    if args.num_seeds > MAX_SEEDS:
        parser.error(f"--num-seeds: expected at most {MAX_SEEDS} seeds, got {args.num_seeds}")
    if args.seed + args.num_seeds > SEED_LIMIT:
        parser.error(f"--num-seeds: expected seeds below 2**32, got up to "
                     f"{args.seed + args.num_seeds - 1}")  # fmt: skip
    return list(range(args.seed, args.seed + args.num_seeds))


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (cuda when available, else cpu), cpu or cuda (default auto)",
    )


def check_writable(out: Path, flag: str = "--out") -> str | None:
    """Why the directory ``out`` (given as ``flag``) cannot be written, or None. Creates nothing."""
    if out.is_symlink() and not out.exists():
        return f"{flag}: expected a writable directory, but {out} is a dangling symlink"
    existing = out
    while not existing.exists():
        if existing.is_symlink():
            return f"{flag}: expected a writable directory, but {existing} is a dangling symlink"
        existing = existing.parent
    if not existing.is_dir():
        return f"{flag}: expected a writable directory, but {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{flag}: expected a writable directory, but {existing} is not writable"
    return None


def run_folder(root: Path, name: str, quick: bool) -> Path:
    """Where a run called ``name`` goes under ``root`` without ``--out``: a ``--quick`` run
    in its own ``quick/`` folder, so that it never replaces a full run."""
    return root / name / "quick" if quick else root / name


def prepare_out(out: Path, parser: argparse.ArgumentParser, flag: str = "--out") -> None:
    """Create ``out`` and prove it can be written, before any work; else a one-line error.

    Call it last, once every other flag has been checked, so that a bad flag leaves nothing
    behind. Catches what permission bits cannot tell (for example a read-only file system).
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        parser.error(f"{flag}: expected a writable directory, but {out} cannot be written "
                     f"({error.strerror or error})")  # fmt: skip


class RunLock:
    """An exclusive lock on a run's output directory, held until ``release`` (or exit).

    Two runs on one ``--out`` would interleave their files; the second is refused instead.
    While it is held, SIGTERM (``kill``, or torchrun stopping the other ranks when one dies)
    exits through Python, so the ``finally`` that releases it runs and no ``.lock`` is left.
    """

    NAME = ".lock"

    def __init__(self, out: Path, parser: argparse.ArgumentParser, flag: str = "--out") -> None:
        import fcntl

        self.path = out / self.NAME
        self.handle = self.path.open("a")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            parser.error(f"{flag}: expected a directory no other run is using, but {out} is "
                         f"locked by another run ({self.path})")  # fmt: skip
        self.previous = signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(128 + sig))

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
        self.handle.close()
        signal.signal(signal.SIGTERM, self.previous)


def resolve_device(name: str, parser: argparse.ArgumentParser) -> torch.device:
    """``auto``, ``cpu`` or ``cuda`` -> a device; anything else is a one-line error."""
    if name not in ("auto", "cpu", "cuda"):
        parser.error(f"--device: expected auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        parser.error("--device: expected a CUDA device for cuda, but torch sees none here")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def make_deterministic(device: torch.device) -> None:
    """Same seed, same device, same results: on CUDA, fix cuBLAS and pick deterministic
    kernels. The CPU ops used here are deterministic already."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # fixed cuBLAS workspace
        torch.use_deterministic_algorithms(True, warn_only=True)
