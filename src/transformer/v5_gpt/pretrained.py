"""Pretrained GPT-2 checkpoints in Hugging Face's layout, read and written without ``transformers``.

A checkpoint is a directory as ``GPT2LMHeadModel.save_pretrained`` writes it: ``config.json``
and ``model.safetensors`` (or shards listed in ``model.safetensors.index.json``). Only
safetensors are read: unlike pickled ``pytorch_model.bin`` files, loading them cannot run code.
"""

from __future__ import annotations

import json
from pathlib import Path

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


def _read_weights(directory: Path) -> dict[str, Tensor]:
    """Every tensor of the checkpoint, from one file or from its shards."""
    if (directory / WEIGHTS_FILE).is_file():
        return load_file(directory / WEIGHTS_FILE)
    if (directory / INDEX_FILE).is_file():
        shards = sorted(
            set(json.loads((directory / INDEX_FILE).read_text())["weight_map"].values())
        )
        return {key: t for shard in shards for key, t in load_file(directory / shard).items()}
    present = sorted(p.name for p in directory.iterdir())
    raise FileNotFoundError(
        f"directory: expected {WEIGHTS_FILE} (or {INDEX_FILE}) in {directory}, got {present}; "
        f"re-save with save_pretrained(..., safe_serialization=True)"
    )


def load_gpt2_checkpoint(directory: str | Path) -> GPT:
    """The GPT stored in a local GPT-2 checkpoint directory; nothing is downloaded.

    Weights keep their stored dtype and load on the CPU.
    """
    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file():
        what = "no such directory" if not directory.is_dir() else f"no {CONFIG_FILE} there"
        raise FileNotFoundError(
            f"directory: expected a GPT-2 checkpoint folder with {CONFIG_FILE} and {WEIGHTS_FILE} "
            f"(as save_pretrained writes), got {str(directory)!r}: {what}"
        )
    config = config_from_hf(json.loads((directory / CONFIG_FILE).read_text()))
    return from_hf_state_dict(config, _read_weights(directory))


def save_gpt2_checkpoint(gpt: GPT, directory: str | Path) -> None:
    """Write ``gpt`` as config.json + model.safetensors, which ``GPT2LMHeadModel.from_pretrained``
    and ``load_gpt2_checkpoint`` read. Each file is written whole or not at all."""
    state = to_hf_state_dict(gpt)
    del state["lm_head.weight"]  # tied: stored once, as Hugging Face does
    tensors = {key: t.cpu() for key, t in state.items()}
    directory = Path(directory)
    write_bytes(directory / WEIGHTS_FILE, safetensors_bytes(tensors, metadata={"format": "pt"}))
    write_json(directory / CONFIG_FILE, hf_config_dict(gpt.config))
