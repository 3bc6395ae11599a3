"""Weights to and from Hugging Face's ``GPT2LMHeadModel``, without importing ``transformers``.

GPT-2 stores its linear layers as ``Conv1D``: ``y = x @ weight + bias`` with ``weight``
(in_features, out_features), the transpose of ``nn.Linear``'s (out, in). So ``c_attn``,
``c_proj`` and ``c_fc`` weights are transposed on the way in and out. ``c_attn`` packs
q, k, v along its output columns, which after the transpose are the rows of v2's
``in_proj_weight`` (3E, E), in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from transformer._checks import shape_str
from transformer.v5_gpt.config import GPTConfig
from transformer.v5_gpt.gpt import GPT

PREFIX = "transformer."  # GPT2LMHeadModel's body; checkpoints of a bare GPT2Model lack it

# (ours, GPT-2's, stored transposed); block keys are below "h.{i}." in both
BLOCK_KEYS = (
    ("norm1.weight", "ln_1.weight", False),
    ("norm1.bias", "ln_1.bias", False),
    ("self_attn.in_proj_weight", "attn.c_attn.weight", True),
    ("self_attn.in_proj_bias", "attn.c_attn.bias", False),
    ("self_attn.out_proj.weight", "attn.c_proj.weight", True),
    ("self_attn.out_proj.bias", "attn.c_proj.bias", False),
    ("norm2.weight", "ln_2.weight", False),
    ("norm2.bias", "ln_2.bias", False),
    ("linear1.weight", "mlp.c_fc.weight", True),
    ("linear1.bias", "mlp.c_fc.bias", False),
    ("linear2.weight", "mlp.c_proj.weight", True),
    ("linear2.bias", "mlp.c_proj.bias", False),
)
OUTER_KEYS = (
    ("wte.weight", "wte.weight", False),
    ("wpe.weight", "wpe.weight", False),
    ("ln_f.weight", "ln_f.weight", False),
    ("ln_f.bias", "ln_f.bias", False),
)
# buffers of older GPT-2 versions (a stored causal mask), not weights
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")

# GPT2Config's defaults: config.json may leave out any key that has its default value
HF_DEFAULTS: dict[str, Any] = {
    "vocab_size": 50257,
    "n_positions": 1024,
    "n_embd": 768,
    "n_layer": 12,
    "n_head": 12,
    "n_inner": None,
    "embd_pdrop": 0.1,
    "attn_pdrop": 0.1,
    "resid_pdrop": 0.1,
    "layer_norm_epsilon": 1e-5,
    "activation_function": "gelu_new",
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
    "add_cross_attention": False,
    "tie_word_embeddings": True,
}
# GPT-2 options GPT cannot follow, with the value it needs
REQUIRED = {
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
    "add_cross_attention": False,
    "tie_word_embeddings": True,
}
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")  # one function, three spellings


def key_pairs(n_layer: int) -> list[tuple[str, str, bool]]:
    """Every (our key, Hugging Face key, transposed) for a GPT of ``n_layer`` blocks."""
    pairs = [(ours, PREFIX + theirs, t) for ours, theirs, t in OUTER_KEYS]
    for i in range(n_layer):
        pairs += [(f"h.{i}.{ours}", f"{PREFIX}h.{i}.{theirs}", t) for ours, theirs, t in BLOCK_KEYS]
    return pairs


def config_from_hf(hf_config: Mapping[str, Any]) -> GPTConfig:
    """A ``GPT2Config`` as a dict (``config.to_dict()`` or config.json) -> ``GPTConfig``."""
    values = {**HF_DEFAULTS, **hf_config}
    if values.get("model_type", "gpt2") != "gpt2":
        raise ValueError(f"model_type: expected 'gpt2', got {values['model_type']!r}")
    if values["activation_function"] not in TANH_GELUS:
        raise ValueError(
            f"activation_function: expected GELU with the tanh approximation "
            f"({', '.join(TANH_GELUS)}), got {values['activation_function']!r}"
        )
    for name, needed in REQUIRED.items():
        if values[name] != needed:
            raise ValueError(
                f"{name}: expected {needed} (GPT has no other form), got {values[name]!r}"
            )
    fields = GPTConfig.__dataclass_fields__
    return GPTConfig(**{name: values[name] for name in fields})


def hf_config_dict(config: GPTConfig) -> dict[str, Any]:
    """The config.json that ``GPT2LMHeadModel.from_pretrained`` reads for ``config``.

    Token ids for bos/eos are left unset: GPT knows no tokenizer.
    """
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        **config.to_dict(),
        **{name: HF_DEFAULTS[name] for name in ("activation_function", *REQUIRED)},
        "initializer_range": 0.02,
        "bos_token_id": None,
        "eos_token_id": None,
    }


def from_hf_state_dict(config: GPTConfig, state_dict: Mapping[str, Tensor]) -> GPT:
    """A GPT with GPT-2 weights (keys with or without ``transformer.``), dtype and device kept."""
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config: expected a GPTConfig, got {type(config).__name__}")
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"state_dict: expected a mapping of tensors, got {type(state_dict).__name__}"
        )
    for key, tensor in state_dict.items():
        if not isinstance(tensor, Tensor) or not tensor.is_floating_point():
            got = tensor.dtype if isinstance(tensor, Tensor) else type(tensor).__name__
            raise TypeError(f"{key}: expected a floating-point weight tensor, got {got}")
    state = {
        (key if key.startswith(PREFIX) or key == "lm_head.weight" else PREFIX + key): tensor
        for key, tensor in state_dict.items()
        if not key.endswith(IGNORED_SUFFIXES)
    }
    pairs = key_pairs(config.n_layer)
    expected = {theirs for _, theirs, _ in pairs}
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected - {"lm_head.weight"})
    if missing or unexpected:
        raise ValueError(
            f"state_dict: expected GPT-2's keys for n_layer={config.n_layer}, got {len(missing)} "
            f"missing {missing[:4]} and {len(unexpected)} unexpected {unexpected[:4]}"
        )
    embedding = state[PREFIX + "wte.weight"]
    head = state.get("lm_head.weight")
    if head is not None and not torch.equal(head, embedding):
        raise ValueError(
            "lm_head.weight: expected the token embedding transformer.wte.weight (tied, as in "
            "GPT-2), got a different matrix"
        )
    gpt = GPT(config).to(device=embedding.device, dtype=embedding.dtype)
    ours_state = gpt.state_dict()
    converted = {}
    for ours, theirs, transposed in pairs:
        want = ours_state[ours].shape
        stored = torch.Size(reversed(want)) if transposed else want  # as GPT-2 keeps it
        if state[theirs].shape != stored:
            layout = " (Conv1D stores (in, out))" if transposed else ""
            raise ValueError(
                f"{theirs}: expected shape {shape_str(stored)}{layout}, "
                f"got {shape_str(state[theirs].shape)}"
            )
        converted[ours] = state[theirs].t() if transposed else state[theirs]
    converted["lm_head.weight"] = converted["wte.weight"]
    gpt.load_state_dict(converted)
    return gpt


def from_hf_gpt2(hf_model: Any) -> GPT:
    """A GPT equal to a ``GPT2LMHeadModel`` (anything with ``.config`` and ``.state_dict()``)."""
    return from_hf_state_dict(config_from_hf(hf_model.config.to_dict()), hf_model.state_dict())


def to_hf_state_dict(gpt: GPT) -> dict[str, Tensor]:
    """GPT's weights as ``GPT2LMHeadModel``'s state dict: its key names, Conv1D layout, and
    ``lm_head.weight`` the same tensor as ``transformer.wte.weight``. Tensors are copies."""
    if not isinstance(gpt, GPT):
        raise TypeError(f"gpt: expected a GPT, got {type(gpt).__name__}")
    ours = gpt.state_dict()
    state = {
        theirs: (ours[key].t() if transposed else ours[key]).clone(
            memory_format=torch.contiguous_format
        )
        for key, theirs, transposed in key_pairs(gpt.config.n_layer)
    }
    state["lm_head.weight"] = state[PREFIX + "wte.weight"]
    return state
