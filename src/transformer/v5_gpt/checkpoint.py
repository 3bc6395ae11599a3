"""Training checkpoints as safetensors: tensors plus JSON metadata, atomic, never pickled.

One file holds everything an exact resume needs:

* tensors ``model/<name>`` (the state dict), ``optimizer/...`` (the optimizer's tensors),
  ``rng/<name>`` (random number generator states, uint8);
* metadata (safetensors keeps ``str -> str``): one key, ``transformer.v5_gpt.checkpoint``,
  whose value is a JSON object: ``format_version``, ``gpt_config``, ``train_config``,
  ``step``, ``history``, ``extra`` and ``optimizer``, the optimizer's nested state dict with
  every tensor replaced by ``{"tensor": "<name in the file>"}``. (One key, because
  safetensors writes several in no fixed order; this way equal runs write equal files.)

Loading checks the header before anything else: a file that is not safetensors (for
example a ``torch.save`` zip, which holds a pickle) is refused by name, and so is a
checkpoint whose ``GPTConfig`` differs from the model's. Unpickling can run arbitrary code,
so it is never used here. (``pretrained.py`` reads and writes Hugging Face's layout instead.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from torch import Tensor, nn

from transformer.experiments.atomic import write_bytes

FORMAT = "transformer.v5_gpt.checkpoint"  # the one metadata key
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit


class CheckpointError(ValueError):
    """A file that cannot be loaded as this model's checkpoint; the message says why."""


@dataclass
class Checkpoint:
    """What a checkpoint holds besides the weights and optimizer state it loads in place."""

    step: int
    rng: dict[str, Tensor] = field(repr=False)
    train_config: dict | None
    history: dict | None
    extra: dict


# --- optimizer state: nested dicts <-> flat tensors + a JSON tree -----------------------


def flatten_state(value: object, name: str, tensors: dict[str, Tensor]) -> object:
    """A JSON tree for ``value``; each tensor goes into ``tensors`` under its path ``name``.

    Dicts become ``{"dict": [[key, value], ...]}`` so that integer keys (parameter ids) stay
    integers, and tuples ``{"tuple": [...]}`` so that they come back as tuples.
    """
    if isinstance(value, Tensor):
        tensors[name] = value.detach().cpu().contiguous().clone()
        return {"tensor": name}
    if isinstance(value, dict):
        return {"dict": [[k, flatten_state(v, f"{name}/{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        items = [flatten_state(v, f"{name}/{i}", tensors) for i, v in enumerate(value)]
        return {"tuple": items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"{name}: expected tensors, numbers, strings, lists or dicts, got {value!r}")


def unflatten_state(tree: object, tensors: dict[str, Tensor]) -> object:
    """The inverse of :func:`flatten_state`."""
    if isinstance(tree, dict) and "tensor" in tree:
        return tensors[tree["tensor"]]
    if isinstance(tree, dict) and "tuple" in tree:
        return tuple(unflatten_state(v, tensors) for v in tree["tuple"])
    if isinstance(tree, dict):
        return {k: unflatten_state(v, tensors) for k, v in tree["dict"]}
    if isinstance(tree, list):
        return [unflatten_state(v, tensors) for v in tree]
    return tree


# --- saving -----------------------------------------------------------------------------


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    step: int = 0,
    rng: dict[str, Tensor] | None = None,
    train_config: dict | None = None,
    history: dict | None = None,
    extra: dict | None = None,
) -> None:
    """Write ``model`` (with ``.config.to_dict()``) and the training state to ``path``."""
    tensors = {
        f"model/{k}": v.detach().cpu().contiguous().clone()  # tied weights: one copy each
        for k, v in model.state_dict().items()
    }
    tensors |= {f"rng/{k}": v.cpu() for k, v in (rng or {}).items()}
    optimizer_tree = (
        None if optimizer is None else flatten_state(optimizer.state_dict(), "optimizer", tensors)
    )
    values = {
        "format_version": FORMAT_VERSION,
        "gpt_config": model.config.to_dict(),
        "train_config": train_config,
        "step": step,
        "history": history,
        "extra": extra or {},
        "optimizer": optimizer_tree,
    }
    write_bytes(Path(path), save(tensors, metadata={FORMAT: json.dumps(values)}))


# --- loading ----------------------------------------------------------------------------


def describe_start(head: bytes) -> str:
    """What the first bytes of a file that is not safetensors look like."""
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (what torch.save writes; it holds a pickle, which is never loaded)"
    if head.startswith(b"\x80"):
        return "a pickle stream (never loaded: unpickling can run arbitrary code)"
    return f"a file starting with {head[:8]!r}"


def read_header(path: Path) -> dict:
    """The JSON header of a safetensors file, or :class:`CheckpointError` naming ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: expected a checkpoint file, got {path} (no such file)")
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(
                f"{path}: expected a safetensors file (8-byte header length, then a JSON "
                f"header), got {describe_start(head)}"
            )
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict):
        raise CheckpointError(
            f"{path}: expected a safetensors file, but its {length}-byte header is not a "
            f"JSON object; got {describe_start(head + raw)}"
        )
    return header


def differences(saved: dict, current: dict, saved_name: str, current_name: str) -> list[str]:
    """``field (saved_name X, current_name Y)`` for each field whose values differ."""
    keys = list(current) + [k for k in saved if k not in current]
    missing = "<absent>"
    return [
        f"{k} ({saved_name} {saved.get(k, missing)!r}, {current_name} {current.get(k, missing)!r})"
        for k in keys
        if saved.get(k, missing) != current.get(k, missing)
    ]


def read_metadata(path: Path) -> dict:
    """The checkpoint's metadata, JSON values decoded; refuses other safetensors files."""
    metadata = read_header(path).get("__metadata__") or {}
    if FORMAT not in metadata:
        raise CheckpointError(
            f"{path}: expected a v5 GPT training checkpoint (metadata key {FORMAT!r}), "
            f"got a safetensors file with metadata keys {sorted(metadata)}"
        )
    values = json.loads(metadata[FORMAT])
    if values.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: expected checkpoint format version {FORMAT_VERSION}, "
            f"got {values.get('format_version')!r}"
        )
    return values


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> Checkpoint:
    """Load weights (and optimizer state) from ``path`` in place; return the rest.

    Everything is checked before ``model`` or ``optimizer`` is touched.
    """
    meta = read_metadata(path)
    diff = differences(meta["gpt_config"], model.config.to_dict(), "checkpoint", "model")
    if diff:
        raise CheckpointError(
            f"{path}: the checkpoint's GPTConfig differs from the model's in "
            f"{len(diff)} field(s): {', '.join(diff)}"
        )
    if optimizer is not None and meta["optimizer"] is None:
        raise CheckpointError(f"{path}: expected optimizer state to resume from, got none")
    tensors = load_file(str(path), device="cpu")  # safetensors: no pickle involved
    state = {k.removeprefix("model/"): v for k, v in tensors.items() if k.startswith("model/")}
    model.load_state_dict(state, strict=True)
    if optimizer is not None:
        optimizer.load_state_dict(unflatten_state(meta["optimizer"], tensors))
    rng = {k.removeprefix("rng/"): v for k, v in tensors.items() if k.startswith("rng/")}
    return Checkpoint(meta["step"], rng, meta["train_config"], meta["history"], meta["extra"])
