"""Llama checkpoint folders in Hugging Face's layout, read and written without ``transformers``.

A folder is what ``LlamaForCausalLM.save_pretrained`` writes: ``config.json`` and either
``model.safetensors`` or shards ``model-00001-of-0000N.safetensors`` listed in
``model.safetensors.index.json`` (``metadata.total_size``, ``weight_map``). As Hugging Face
does, a tied model stores its embedding once, without ``lm_head.weight``; loading accepts
it with or without. Reading is v5's (``v5_gpt.pretrained``): only safetensors, never a
pickle, and a damaged file is a :class:`CheckpointFolderError` naming it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes
from torch import Tensor

from transformer._checks import check_positive_int, shape_str
from transformer.io import write_bytes, write_json
from transformer.v5_gpt.pretrained import (
    CONFIG_FILE,
    INDEX_FILE,
    WEIGHTS_FILE,
    CheckpointFolderError,
    config_path,
    read_config,
    read_weights,
)
from transformer.v7_modern.config import ModernConfig
from transformer.v7_modern.llama import (
    config_from_hf,
    config_to_hf,
    from_hf_state_dict,
    to_hf_state_dict,
)
from transformer.v7_modern.model import ModernGPT

DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
SHARD_NAME = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
EMBEDDING = "model.embed_tokens.weight"


def shard_file(index: int, count: int) -> str:
    """Hugging Face's name for shard ``index`` (from 1) of ``count``."""
    return f"model-{index:05d}-of-{count:05d}.safetensors"


def _parse_config(values: dict) -> ModernConfig:
    for key in ("rope_scaling", "rope_parameters"):  # config_from_hf reads them as objects
        if values.get(key) is not None and not isinstance(values[key], Mapping):
            raise ValueError(f"{key}: expected an object or null, got {values[key]!r}")
    return config_from_hf(values)


def _weights_dtype(weights: Mapping[str, Tensor], directory: Path) -> torch.dtype:
    """The dtype the model is built in: the token embedding's (every tensor a float)."""
    for key, tensor in weights.items():
        if tensor.dtype not in DTYPES:
            raise CheckpointFolderError(
                f"{directory}: {key}: expected a floating-point weight tensor "
                f"({', '.join(str(d).removeprefix('torch.') for d in DTYPES)}), got {tensor.dtype}"
            )
    embedding = weights.get(EMBEDDING)
    return torch.float32 if embedding is None else embedding.dtype


def _check_shapes(weights: Mapping[str, Tensor], config: ModernConfig, directory: Path) -> None:
    """Every stored tensor that the model has, in the shape config.json implies, named by
    its key in the file (``from_hf_state_dict`` checks after packing q, k and v together)."""
    with torch.device("meta"):  # shapes only: nothing is allocated
        expected = to_hf_state_dict(ModernGPT(config))
    for key, tensor in weights.items():
        if key in expected and tensor.shape != expected[key].shape:
            raise CheckpointFolderError(
                f"{directory}: {key}: expected shape {shape_str(expected[key].shape)} for the "
                f"sizes in {CONFIG_FILE}, got {shape_str(tensor.shape)}"
            )


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Build parameters in ``dtype`` (as ``from_pretrained`` does); RoPE's frequencies are
    made in float32 explicitly. Not thread-safe: the default is process-wide."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def load_llama_checkpoint(directory: str | Path) -> ModernGPT:
    """The ``ModernGPT`` stored in a local Llama checkpoint folder; nothing is downloaded.

    Weights load on the CPU in the stored dtype (the token embedding's, when they differ).
    A missing folder or config.json is a FileNotFoundError (as v5's); a file that cannot be
    read, a config v7 cannot follow, or weights that do not fit it are a
    :class:`CheckpointFolderError` naming the file (or folder) and the key.
    """
    directory = Path(directory)
    config = read_config(config_path(directory, "Llama"), _parse_config)
    weights = read_weights(directory)
    dtype = _weights_dtype(weights, directory)
    _check_shapes(weights, config, directory)
    try:
        with _default_dtype(dtype):
            return from_hf_state_dict(weights, config)
    except (TypeError, ValueError) as error:
        raise CheckpointFolderError(f"{directory}: {error}") from None


def _hf_order(key: str) -> tuple:
    """Embedding, then layer by layer, then the final norm and the head (Hugging Face's
    module order, so a shard holds neighbouring layers)."""
    parts = key.split(".")
    if key == EMBEDDING:
        return (0,)
    if parts[:2] == ["model", "layers"]:
        return (1, int(parts[2]), key)
    return (2, key != "model.norm.weight", key)


def _split(tensors: dict[str, Tensor], max_shard_bytes: int | None) -> list[dict[str, Tensor]]:
    """Tensors in order, greedily into shards of at most ``max_shard_bytes`` (a tensor
    larger than that gets a shard of its own), as ``huggingface_hub`` splits them."""
    shards: list[dict[str, Tensor]] = [{}]
    size = 0
    for key, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if max_shard_bytes is not None and shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    return shards


def save_llama_checkpoint(
    model: ModernGPT, directory: str | Path, max_shard_bytes: int | None = None
) -> None:
    """Write ``model`` as ``save_pretrained`` would, for ``LlamaForCausalLM.from_pretrained``
    and :func:`load_llama_checkpoint`: config.json and model.safetensors, or shards of at
    most ``max_shard_bytes`` each plus their index when it does not fit in one.

    Tensors keep their dtype (config.json says which). A model that is not Llama-shaped is
    refused before anything is written. Each file is written whole (``transformer.io``);
    the file that makes the folder loadable (model.safetensors, or the index) goes last,
    after the old one is removed, so an interrupted save leaves a folder that refuses to
    load, never old weights under a new config or a mix of shards. Shards of an earlier
    save that the new one does not use are removed.
    """
    if not isinstance(model, ModernGPT):
        raise TypeError(f"model: expected a ModernGPT, got {type(model).__name__}")
    if max_shard_bytes is not None:
        check_positive_int("max_shard_bytes", max_shard_bytes)
    hf_config = config_to_hf(model.config)  # ValueError unless Llama-shaped
    state = to_hf_state_dict(model)
    if model.config.tie_word_embeddings:
        del state["lm_head.weight"]  # stored once, as save_pretrained does
    tensors = {key: state[key].cpu().contiguous() for key in sorted(state, key=_hf_order)}
    dtype = str(tensors[EMBEDDING].dtype).removeprefix("torch.")
    hf_config |= {"torch_dtype": dtype, "dtype": dtype}  # transformers < 4.56 reads the first
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"directory: expected a folder, got the file {directory}")
    shards = _split(tensors, max_shard_bytes)
    count = len(shards)
    names = [WEIGHTS_FILE] if count == 1 else [shard_file(i, count) for i in range(1, count + 1)]

    for entry in (INDEX_FILE, WEIGHTS_FILE):  # nothing loads until the new entry is written
        (directory / entry).unlink(missing_ok=True)
    if count > 1:
        for name, shard in zip(names, shards, strict=True):
            write_bytes(directory / name, safetensors_bytes(shard, metadata={"format": "pt"}))
    write_json(directory / CONFIG_FILE, hf_config)
    if count == 1:
        write_bytes(directory / WEIGHTS_FILE, safetensors_bytes(tensors, metadata={"format": "pt"}))
    else:
        write_json(directory / INDEX_FILE, _index(tensors, names, shards))
    for path in directory.iterdir():
        if SHARD_NAME.fullmatch(path.name) and path.name not in names:
            path.unlink(missing_ok=True)


def _index(tensors: dict[str, Tensor], names: list[str], shards: list[dict]) -> dict[str, Any]:
    """model.safetensors.index.json as transformers writes it (keys sorted)."""
    weight_map = {key: name for name, shard in zip(names, shards, strict=True) for key in shard}
    metadata = {
        "total_parameters": sum(t.numel() for t in tensors.values()),
        "total_size": sum(t.numel() * t.element_size() for t in tensors.values()),
    }
    return {"metadata": metadata, "weight_map": dict(sorted(weight_map.items()))}
