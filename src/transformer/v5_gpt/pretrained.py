"""Pretrained GPT-2 checkpoints in Hugging Face's layout, read and written without ``transformers``.

A checkpoint is a directory as ``GPT2LMHeadModel.save_pretrained`` writes it: ``config.json``
and ``model.safetensors`` (or shards listed in ``model.safetensors.index.json``). Only
safetensors are read: unlike pickled ``pytorch_model.bin`` files, loading them cannot run code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import Tensor

from transformer.io import write_bytes, write_json
from transformer.v5_gpt.gpt import GPT
from transformer.v5_gpt.hf import (
    config_from_hf,
    from_hf_state_dict,
    hf_config_dict,
    to_hf_state_dict,
)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

T = TypeVar("T")


class CheckpointFolderError(ValueError):
    """A checkpoint folder (GPT-2's here, Llama's in v7) with a file that cannot be read; the
    message names it."""


def read_json(path: Path) -> dict:
    """A JSON object from ``path``, or an error naming the file."""
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        message = f"{path}: expected a JSON object, got damaged JSON ({error})"
        raise CheckpointFolderError(message) from None
    if not isinstance(value, dict):
        raise CheckpointFolderError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """The tensors of one safetensors file (never a pickle), or an error naming it."""
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointFolderError(
            f"{path}: expected a whole safetensors file (save_pretrained(..., "
            f"safe_serialization=True) writes one), got one that cannot be read: {error}"
        ) from None


def shard_names(directory: Path) -> list[str]:
    """The shard files an index lists, each checked to lie inside ``directory``."""
    index = directory / INDEX_FILE
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointFolderError(f"{index}: expected a 'weight_map' of tensor -> shard file")
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        inside = isinstance(shard, str) and Path(shard).name == shard and shard not in (".", "..")
        if not inside:
            raise CheckpointFolderError(
                f"{index}: expected shard file names inside the folder, got {shard!r}"
            )
    return shards


def read_weights(directory: Path) -> dict[str, Tensor]:
    """Every tensor of the checkpoint, from one file or from its shards."""
    if (directory / WEIGHTS_FILE).is_file():
        return read_safetensors(directory / WEIGHTS_FILE)
    if (directory / INDEX_FILE).is_file():
        tensors = {}
        for shard in shard_names(directory):
            tensors |= read_safetensors(directory / shard)
        return tensors
    present = sorted(p.name for p in directory.iterdir())
    raise FileNotFoundError(
        f"directory: expected {WEIGHTS_FILE} (or {INDEX_FILE}) in {directory}, got {present}; "
        f"re-save with save_pretrained(..., safe_serialization=True)"
    )


def config_path(directory: Path, kind: str) -> Path:
    """``directory``'s config.json, or FileNotFoundError saying what is missing (``kind``
    names the model in the message: "GPT-2", "Llama")."""
    if not (directory / CONFIG_FILE).is_file():
        what = "no such directory" if not directory.is_dir() else f"no {CONFIG_FILE} there"
        raise FileNotFoundError(
            f"directory: expected a {kind} checkpoint folder with {CONFIG_FILE} and "
            f"{WEIGHTS_FILE} (as save_pretrained writes), got {str(directory)!r}: {what}"
        )
    return directory / CONFIG_FILE


def read_config(path: Path, parse: Callable[[dict], T]) -> T:
    """``parse`` of the JSON object in ``path``; its TypeError or ValueError becomes a
    :class:`CheckpointFolderError` that names the file."""
    try:
        return parse(read_json(path))
    except (TypeError, ValueError) as error:
        if isinstance(error, CheckpointFolderError):
            raise
        raise CheckpointFolderError(f"{path}: {error}") from None


def load_gpt2_checkpoint(directory: str | Path) -> GPT:
    """The GPT stored in a local GPT-2 checkpoint directory; nothing is downloaded.

    Weights keep their stored dtype and load on the CPU. A file that cannot be read raises
    :class:`CheckpointFolderError` naming it.
    """
    directory = Path(directory)
    config = read_config(config_path(directory, "GPT-2"), config_from_hf)
    weights = read_weights(directory)
    try:
        return from_hf_state_dict(config, weights)
    except (TypeError, ValueError) as error:
        raise CheckpointFolderError(f"{directory}: {error}") from None


def save_gpt2_checkpoint(gpt: GPT, directory: str | Path) -> None:
    """Write ``gpt`` as config.json + model.safetensors, which ``GPT2LMHeadModel.from_pretrained``
    and ``load_gpt2_checkpoint`` read. Each file is written whole or not at all."""
    state = to_hf_state_dict(gpt)
    del state["lm_head.weight"]  # tied: stored once, as Hugging Face does
    tensors = {key: t.cpu() for key, t in state.items()}
    directory = Path(directory)
    write_bytes(directory / WEIGHTS_FILE, safetensors_bytes(tensors, metadata={"format": "pt"}))
    write_json(directory / CONFIG_FILE, hf_config_dict(gpt.config))
