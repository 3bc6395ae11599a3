"""A byte-level corpus from the running Python's own standard library, batches and a baseline.

The corpus is the ``.py`` files under ``sysconfig.get_paths()["stdlib"]``: always on disk,
so nothing downloads. Only files that are pure ASCII are kept, so one byte is one character
and "bits per byte" is "bits per character". The vocabulary is all 256 byte values.

* Which files: sorted by path, filtered (no tests, no site-packages, no huge files), then
  visited in a fixed pseudo-random order (CRC-32 of the relative path); each file is kept if
  it still fits in the byte budget, and skipped if it would overflow it (a smaller one later
  may still fit), so the corpus is at most the budget. The same interpreter always gives the
  same corpus.
* Train/val split: by file, never inside one. A file is in val when the CRC-32 of its
  relative path is divisible by ``val_every``, so the split does not depend on which other
  files exist.
"""

from __future__ import annotations

import hashlib
import math
import sysconfig
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from transformer._checks import check_positive_int, check_rank

VOCAB_SIZE = 256  # one token per byte value
SKIPPED_DIRS = frozenset(
    {"site-packages", "test", "tests", "idlelib", "__pycache__", "encodings"}  # encodings: tables
)


@dataclass(frozen=True)
class CorpusConfig:
    """How much of the standard library to read. Byte budgets are upper bounds."""

    train_bytes: int = 2_000_000
    val_bytes: int = 200_000
    val_every: int = 10  # about one file in ``val_every`` goes to val
    max_file_bytes: int = 100_000  # larger files (generated tables) are skipped

    def __post_init__(self) -> None:
        for name in ("train_bytes", "val_bytes", "val_every", "max_file_bytes"):
            check_positive_int(name, getattr(self, name))
        if self.val_every < 2:
            raise ValueError(f"val_every: expected at least 2, got {self.val_every}")


@dataclass(frozen=True)
class Corpus:
    """Train and val bytes as token tensors ``(N,)`` uint8, and which files they came from."""

    train: Tensor  # (N_train,) uint8
    val: Tensor  # (N_val,) uint8
    train_files: tuple[str, ...]
    val_files: tuple[str, ...]

    def summary(self) -> dict:
        """Sizes and a digest of the file lists, for results files (no absolute paths)."""
        listing = "\n".join(("train:", *self.train_files, "val:", *self.val_files))
        return {
            "source": "Python standard library (.py, ASCII only)",
            "train_files": len(self.train_files),
            "val_files": len(self.val_files),
            "train_bytes": int(self.train.numel()),
            "val_bytes": int(self.val.numel()),
            "files_sha256": hashlib.sha256(listing.encode()).hexdigest(),
        }


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def path_hash(relative: str) -> int:
    """A hash that is the same in every process (unlike ``hash``, which is salted)."""
    return zlib.crc32(relative.encode("utf-8"))


def is_val_file(relative: str, val_every: int) -> bool:
    return path_hash(relative) % val_every == 0


def candidate_files(root: Path, max_file_bytes: int) -> list[str]:
    """Relative POSIX paths of the usable ``.py`` files under ``root``, sorted."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if SKIPPED_DIRS.intersection(relative.parts[:-1]) or relative.name.startswith(
            "_sysconfigdata"  # generated, and different on every machine
        ):
            continue
        if path.is_file() and 0 < path.stat().st_size <= max_file_bytes:
            found.append(relative.as_posix())
    return found


def read_ascii(path: Path) -> bytes | None:
    data = path.read_bytes()
    return data if data.isascii() else None


def take_files(root: Path, files: list[str], budget: int) -> tuple[list[str], bytes]:
    """Files in CRC-32 order until ``budget`` bytes; returns their names and joined text."""
    chosen, parts, size = [], [], 0
    for relative in sorted(files, key=lambda name: (path_hash(name), name)):
        data = read_ascii(root / relative)
        if data is None or size + len(data) > budget:
            continue
        chosen.append(relative)
        parts.append(data)
        size += len(data)
    return chosen, b"".join(parts)


def to_tokens(data: bytes) -> Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)  # (N,)


def load_corpus(config: CorpusConfig | None = None, root: Path | None = None) -> Corpus:
    """The corpus from ``root`` (default: this interpreter's standard library)."""
    config = config or CorpusConfig()
    root = Path(root) if root is not None else stdlib_root()
    if not root.is_dir():
        raise FileNotFoundError(f"root: expected a directory of Python sources, got {root}")
    files = candidate_files(root, config.max_file_bytes)
    val_names = [f for f in files if is_val_file(f, config.val_every)]
    train_names = [f for f in files if not is_val_file(f, config.val_every)]
    train_files, train_data = take_files(root, train_names, config.train_bytes)
    val_files, val_data = take_files(root, val_names, config.val_bytes)
    if not train_data or not val_data:
        raise ValueError(
            f"root: expected ASCII .py files for both splits under {root}, got "
            f"{len(train_files)} train and {len(val_files)} val files"
        )
    return Corpus(to_tokens(train_data), to_tokens(val_data), tuple(train_files), tuple(val_files))


def sample_batch(
    data: Tensor, batch_size: int, block_size: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Random windows of ``data`` (N,): inputs and next-byte targets, each (B, T) int64."""
    check_rank("data", data, (1,), "(N,) of token ids")
    check_positive_int("batch_size", batch_size)
    check_positive_int("block_size", block_size)
    if data.numel() < block_size + 1:
        raise ValueError(
            f"data: expected at least block_size + 1 = {block_size + 1} tokens, got {data.numel()}"
        )
    starts = torch.randint(0, data.numel() - block_size, (batch_size,), generator=generator)  # (B,)
    offsets = torch.arange(block_size + 1)  # (T+1,)
    windows = data[starts[:, None] + offsets].long()  # (B, T+1)
    return windows[:, :-1], windows[:, 1:]  # (B, T), (B, T)


def unigram_baseline(
    train: Tensor, val: Tensor, vocab_size: int = VOCAB_SIZE, smoothing: float = 1.0
) -> dict[str, float]:
    """Cross-entropy on ``val`` of the byte frequencies of ``train`` (add-``smoothing``).

    The loss of a model that ignores context entirely: a language model that does not beat
    it has learned nothing but how common each character is. Returns nats and bits.
    """
    check_rank("train", train, (1,), "(N,) of token ids")
    check_rank("val", val, (1,), "(N,) of token ids")
    if smoothing < 0:
        raise ValueError(f"smoothing: expected a number >= 0, got {smoothing!r}")
    for name, data in (("train", train), ("val", val)):
        if data.numel() == 0:
            raise ValueError(f"{name}: expected at least one token, got an empty tensor")
        if int(data.max()) >= vocab_size or int(data.min()) < 0:
            raise ValueError(
                f"{name}: expected ids in [0, vocab_size={vocab_size}), got values from "
                f"{int(data.min())} to {int(data.max())}"
            )
    counts = torch.bincount(train.long(), minlength=vocab_size).double() + smoothing  # (V,)
    log_probs = counts.log() - counts.sum().log()  # (V,)
    nats = -log_probs[val.long()].mean().item()
    return {"nats": nats, "bits": nats / math.log(2)}
