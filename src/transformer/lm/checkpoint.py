"""Training checkpoints as safetensors: tensors plus JSON metadata, digests, never pickled.

One file holds everything an exact resume needs:

* tensors ``model/<name>`` (the state dict), ``optimizer/...`` (the optimizer's tensors),
  ``rng/<name>`` (random number generator states, uint8);
* metadata (safetensors keeps ``str -> str``): one key, ``FORMAT``, whose value is a JSON
  object: ``format_version``, ``model_config``, ``train_config``, ``step``, ``history``,
  ``extra``, ``optimizer`` (the optimizer's nested state dict with every tensor replaced by
  ``{"tensor": "<name in the file>"}``) and ``digests``, the SHA-256 of every tensor's bytes.
  (One key, because safetensors writes several in no fixed order; this way equal runs
  write equal files.)

Loading reads and checks everything first: the header, the metadata, every digest, and
every tensor's name and shape against the model, the optimizer and the random states. Only
then is anything changed. Any problem is a :class:`CheckpointError` that names the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save
from torch import Tensor, nn

from transformer.io import write_bytes

FORMAT = "transformer.lm.checkpoint"  # the one metadata key
FORMAT_VERSION = 2
MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit
REQUIRED = (
    "format_version",
    "model_config",
    "train_config",
    "step",
    "history",
    "extra",
    "optimizer",
    "digests",
)


class CheckpointError(ValueError):
    """A file that cannot be loaded as this run's checkpoint; the message says why."""


def digest(tensor: Tensor) -> str:
    """SHA-256 of a tensor's bytes (its dtype and shape are checked separately)."""
    data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)  # (nbytes,)
    return hashlib.sha256(data.numpy().tobytes()).hexdigest()


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
    """The inverse of :func:`flatten_state`; a malformed tree raises KeyError or TypeError."""
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
        "model_config": model.config.to_dict(),
        "train_config": train_config,
        "step": step,
        "history": history,
        "extra": extra or {},
        "optimizer": optimizer_tree,
        "digests": {name: digest(t) for name, t in sorted(tensors.items())},
    }
    write_bytes(Path(path), save(tensors, metadata={FORMAT: json.dumps(values)}))


# --- reading and checking ---------------------------------------------------------------


def describe_start(head: bytes) -> str:
    """What the first bytes of a file that is not safetensors look like."""
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (what torch.save writes; it holds a pickle, which is never loaded)"
    if head.startswith(b"\x80"):
        return "a pickle stream (never loaded: unpickling can run arbitrary code)"
    return f"a file starting with {head[:8]!r}"


def read_header(path: Path, data: bytes) -> dict:
    """The JSON header of safetensors ``data`` read from ``path``, or :class:`CheckpointError`."""
    head = data[:8]
    length = int.from_bytes(head, "little") if len(head) == 8 else -1
    if not 2 <= length <= min(MAX_HEADER_BYTES, len(data) - 8):
        raise CheckpointError(
            f"{path}: expected a safetensors file (8-byte header length, then a JSON header), "
            f"got {describe_start(head)}"
        )
    raw = data[8 : 8 + length]
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict):
        raise CheckpointError(
            f"{path}: expected a safetensors file, but its {length}-byte header is not a "
            f"JSON object; got {describe_start(data[: 8 + length])}"
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


def read_metadata(path: Path, header: dict) -> dict:
    """The checkpoint's metadata, decoded and complete; refuses other safetensors files."""
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or FORMAT not in metadata:
        keys = sorted(metadata) if isinstance(metadata, dict) else metadata
        raise CheckpointError(
            f"{path}: expected a training checkpoint (metadata key {FORMAT!r}), "
            f"got a safetensors file with metadata keys {keys}"
        )
    try:
        values = json.loads(metadata[FORMAT])
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"{path}: expected JSON metadata, got damaged JSON ({error})"
        ) from None
    if not isinstance(values, dict):
        raise CheckpointError(f"{path}: expected a JSON object as metadata, got {values!r}")
    if values.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: expected checkpoint format version {FORMAT_VERSION}, "
            f"got {values.get('format_version')!r}"
        )
    missing = [key for key in REQUIRED if key not in values]
    if missing:
        raise CheckpointError(f"{path}: expected metadata keys {missing}, which are missing")
    if (
        isinstance(values["step"], bool)
        or not isinstance(values["step"], int)
        or values["step"] < 0
    ):
        raise CheckpointError(f"{path}: expected a step >= 0, got {values['step']!r}")
    return values


@dataclass
class Checkpoint:
    """A checkpoint read from ``path`` and checked against itself (digests), not yet applied."""

    path: Path
    step: int
    model_config: dict
    train_config: dict | None
    history: dict | None
    extra: dict
    optimizer_tree: Any = field(repr=False)
    tensors: dict[str, Tensor] = field(repr=False)

    def part(self, prefix: str) -> dict[str, Tensor]:
        return {k.removeprefix(prefix): v for k, v in self.tensors.items() if k.startswith(prefix)}

    @property
    def rng(self) -> dict[str, Tensor]:
        return self.part("rng/")

    def error(self, what: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: {what}")


def read_checkpoint(path: Path) -> Checkpoint:
    """Read ``path`` whole and check its header, metadata and every tensor's digest."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: expected a checkpoint file, got {path} (no such file)")
    data = path.read_bytes()
    meta = read_metadata(path, read_header(path, data))
    try:
        tensors = load_bytes(data)  # safetensors: no pickle involved
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: expected whole tensor data, got {error}") from None
    digests = meta["digests"]
    if not isinstance(digests, dict) or set(digests) != set(tensors):
        raise CheckpointError(f"{path}: expected a digest for each tensor and no other")
    for name in sorted(tensors):
        if digest(tensors[name]) != digests[name]:
            raise CheckpointError(
                f"{path}: tensor {name!r} does not match its SHA-256 digest; the file is "
                f"damaged or was changed after it was written"
            )
    return Checkpoint(
        path,
        meta["step"],
        meta["model_config"],
        meta["train_config"],
        meta["history"],
        meta["extra"],
        meta["optimizer"],
        tensors,
    )


def check_tensors(checkpoint: Checkpoint, saved: dict, current: dict, what: str) -> None:
    """Raise unless ``saved`` has exactly ``current``'s names, each with its shape and dtype."""
    missing, unexpected = sorted(set(current) - set(saved)), sorted(set(saved) - set(current))
    if missing or unexpected:
        raise checkpoint.error(
            f"expected the {what} tensors of this run, got {len(missing)} missing "
            f"{missing[:3]} and {len(unexpected)} unexpected {unexpected[:3]}"
        )
    for name, tensor in current.items():
        got = saved[name]
        if got.shape != tensor.shape or got.dtype != tensor.dtype:
            raise checkpoint.error(
                f"{what} tensor {name!r}: expected shape {tuple(tensor.shape)} {tensor.dtype}, "
                f"got {tuple(got.shape)} {got.dtype}"
            )


def optimizer_state(checkpoint: Checkpoint, optimizer: torch.optim.Optimizer) -> dict:
    """The saved optimizer state, checked against ``optimizer``'s parameters."""
    if checkpoint.optimizer_tree is None:
        raise checkpoint.error("expected optimizer state to resume from, got none")
    try:
        state = unflatten_state(checkpoint.optimizer_tree, checkpoint.tensors)
        groups, per_param = state["param_groups"], state["state"]
    except (KeyError, TypeError, ValueError) as error:
        raise checkpoint.error(
            f"expected an optimizer state dict, got a malformed one ({error!r})"
        ) from None
    current = optimizer.state_dict()["param_groups"]
    if [len(g.get("params", ())) for g in groups] != [len(g["params"]) for g in current]:
        raise checkpoint.error("expected the optimizer's parameter groups of this run")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    ids = [i for group in current for i in group["params"]]
    for index, param in zip(ids, params, strict=True):
        for key, value in per_param.get(index, {}).items():
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape != param.shape:
                raise checkpoint.error(
                    f"optimizer state {key!r} of parameter {index}: expected shape "
                    f"{tuple(param.shape)}, got {tuple(value.shape)}"
                )
    return state


def load_checkpoint(
    path: Path | Checkpoint,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    rng_now: dict[str, Tensor] | None = None,
) -> Checkpoint:
    """Load weights (and optimizer state) in place; return the checkpoint.

    Everything is checked first: the file, the model config, every model and optimizer
    tensor, and (given ``rng_now``, the current random states) every random state's shape.
    Only then are ``model`` and ``optimizer`` changed.
    """
    checkpoint = path if isinstance(path, Checkpoint) else read_checkpoint(path)
    diff = differences(checkpoint.model_config, model.config.to_dict(), "checkpoint", "model")
    if diff:
        raise checkpoint.error(
            f"the checkpoint's model config differs from the model's in {len(diff)} "
            f"field(s): {', '.join(diff)}"
        )
    weights = checkpoint.part("model/")
    check_tensors(checkpoint, weights, model.state_dict(), "model")
    state = None if optimizer is None else optimizer_state(checkpoint, optimizer)
    if rng_now is not None:
        check_tensors(checkpoint, checkpoint.rng, rng_now, "random state")
    model.load_state_dict(weights, strict=True)
    if optimizer is not None:
        optimizer.load_state_dict(state)
    return checkpoint
