"""Weights and configs to and from Hugging Face's ``LlamaForCausalLM``, without ``transformers``.

Our packed ``in_proj_weight`` holds Llama's ``q_proj``, ``k_proj`` and ``v_proj`` rows one
after another ((H + 2·H_kv)·D, E); every other tensor has the same layout under another
name. Both use the half-split RoPE pairing, so no row is permuted (Meta's original
checkpoints use the interleaved pairing, and converting those permutes q and k).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from transformer._checks import shape_str
from transformer.v7_modern.config import ModernConfig
from transformer.v7_modern.model import ModernGPT

# (ours, Llama's) below "h.{i}." and "model.layers.{i}."
BLOCK_KEYS = (
    ("norm1.weight", "input_layernorm.weight"),
    ("self_attn.out_proj.weight", "self_attn.o_proj.weight"),
    ("norm2.weight", "post_attention_layernorm.weight"),
    ("mlp.gate_proj.weight", "mlp.gate_proj.weight"),
    ("mlp.up_proj.weight", "mlp.up_proj.weight"),
    ("mlp.down_proj.weight", "mlp.down_proj.weight"),
)
BIAS_KEYS = (
    ("self_attn.out_proj.bias", "self_attn.o_proj.bias"),
    ("mlp.gate_proj.bias", "mlp.gate_proj.bias"),
    ("mlp.up_proj.bias", "mlp.up_proj.bias"),
    ("mlp.down_proj.bias", "mlp.down_proj.bias"),
)
QKV = ("q_proj", "k_proj", "v_proj")
OUTER_KEYS = (("wte.weight", "model.embed_tokens.weight"), ("ln_f.weight", "model.norm.weight"))
HEAD = ("lm_head.weight", "lm_head.weight")
# buffers some Llama checkpoints carry, not weights
IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


def check_llama_shaped(config: ModernConfig) -> None:
    """Raise unless ``config`` has every switch at Llama's setting (any GQA ratio, either
    tying, biases on or off)."""
    wanted = {"positions": "rope", "norm": "rmsnorm", "mlp": "swiglu"}
    for name, value in wanted.items():
        if getattr(config, name) != value:
            raise ValueError(
                f"{name}: expected {value!r} for a Llama model, got {getattr(config, name)!r}"
            )


def _pairs(config: ModernConfig) -> list[tuple[str, str]]:
    pairs = list(OUTER_KEYS)
    block = BLOCK_KEYS + (BIAS_KEYS if config.bias else ())
    for i in range(config.n_layer):
        pairs += [(f"h.{i}.{ours}", f"model.layers.{i}.{theirs}") for ours, theirs in block]
    if not config.tie_word_embeddings:
        pairs.append(HEAD)
    return pairs


def to_hf_state_dict(model: ModernGPT) -> dict[str, Tensor]:
    """Our weights under Llama's names (``lm_head.weight`` included, as HF expects)."""
    config = model.config
    check_llama_shaped(config)
    ours = model.state_dict()
    state = {theirs: ours[mine] for mine, theirs in _pairs(config)}
    for i, block in enumerate(model.h):
        attn = block.self_attn
        prefix = f"model.layers.{i}.self_attn."
        for name, rows in zip(QKV, attn.in_proj_weight.split(attn.split_sizes), strict=True):
            state[prefix + name + ".weight"] = rows
        if attn.in_proj_bias is not None:
            for name, rows in zip(QKV, attn.in_proj_bias.split(attn.split_sizes), strict=True):
                state[prefix + name + ".bias"] = rows
    state["lm_head.weight"] = model.lm_head.weight
    return {key: value.detach().clone() for key, value in state.items()}


def from_hf_state_dict(state: Mapping[str, Tensor], config: ModernConfig) -> ModernGPT:
    """A ``ModernGPT`` of ``config`` holding Llama weights, in their dtype; every key must
    be used, and every tensor must be floating point and of the shape ``config`` implies
    (ValueError naming the first Llama key that is not)."""
    check_llama_shaped(config)
    state = {k: v for k, v in state.items() if not k.endswith(IGNORED_SUFFIXES)}
    model = ModernGPT(config)
    expected = to_hf_state_dict(model)  # Llama's names and shapes for this config
    for key, value in state.items():
        if not isinstance(value, Tensor) or not value.is_floating_point():
            got = value.dtype if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{key}: expected a floating-point tensor, got {got}")
        if key in expected and value.shape != expected[key].shape:
            raise ValueError(
                f"{key}: expected shape {shape_str(expected[key].shape)} for this config, "
                f"got {shape_str(value.shape)}"
            )
    if config.tie_word_embeddings and "lm_head.weight" in state:
        tied = state.pop("lm_head.weight")
        if not torch.equal(tied, state.get("model.embed_tokens.weight", tied)):
            raise ValueError(
                "lm_head.weight: expected it equal to model.embed_tokens.weight "
                "(tie_word_embeddings=True), got a different matrix"
            )
    ours: dict[str, Tensor] = {}
    for mine, theirs in _pairs(config):
        ours[mine] = _take(state, theirs)
    for i in range(config.n_layer):
        prefix = f"model.layers.{i}.self_attn."
        ours[f"h.{i}.self_attn.in_proj_weight"] = torch.cat(
            [_take(state, prefix + name + ".weight") for name in QKV]
        )  # ((H + 2·H_kv)·D, E)
        if config.bias:
            ours[f"h.{i}.self_attn.in_proj_bias"] = torch.cat(
                [_take(state, prefix + name + ".bias") for name in QKV]
            )
    if config.tie_word_embeddings:
        ours["lm_head.weight"] = ours["wte.weight"]  # one matrix under both names
    if state:
        raise ValueError(f"state: expected only Llama weights for {config.n_layer} layers, "
                         f"got extra keys {sorted(state)[:5]}")  # fmt: skip
    model.load_state_dict(ours, strict=True)
    return model.to(ours["wte.weight"].dtype)


def _take(state: dict[str, Tensor], key: str) -> Tensor:
    if key not in state:
        raise ValueError(f"state: expected a tensor named {key!r}, found none")
    return state.pop(key)


# LlamaConfig fields we follow, with LlamaConfig's defaults
HF_DEFAULTS: dict[str, Any] = {
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": None,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "mlp_bias": False,
    "hidden_act": "silu",
    "attention_dropout": 0.0,
    "pretraining_tp": 1,
    "head_dim": None,
}


def config_to_hf(config: ModernConfig, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """Our config -> a ``config.json`` dict that ``LlamaConfig`` reads (weights in ``dtype``)."""
    check_llama_shaped(config)
    if config.embd_pdrop or config.resid_pdrop:
        raise ValueError(
            "embd_pdrop/resid_pdrop: expected 0 for a Llama config (Llama has only attention "
            f"dropout), got {config.embd_pdrop}/{config.resid_pdrop}"
        )
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.n_embd,
        "intermediate_size": config.inner_dim,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.kv_heads,
        "head_dim": config.head_dim,
        "max_position_embeddings": config.n_positions,
        "rms_norm_eps": config.layer_norm_epsilon,
        "rope_theta": config.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
        "tie_word_embeddings": config.tie_word_embeddings,
        "attention_bias": config.bias,
        "mlp_bias": config.bias,
        "hidden_act": "silu",
        "attention_dropout": config.attn_pdrop,
        "pretraining_tp": 1,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }


def config_from_hf(values: Mapping[str, Any]) -> ModernConfig:
    """A ``config.json`` dict of a Llama -> our config; what we do not implement is an error
    that names the key."""
    if not isinstance(values, Mapping):
        raise TypeError(f"config: expected a dict from config.json, got {type(values).__name__}")
    model_type = values.get("model_type", "llama")
    if model_type != "llama":
        raise ValueError(f"model_type: expected 'llama', got {model_type!r}")
    v = HF_DEFAULTS | {k: values[k] for k in HF_DEFAULTS if k in values}
    theta = values.get("rope_theta", 10000.0)
    for key in ("rope_scaling", "rope_parameters"):  # the older and the newer spelling
        rope = values.get(key)
        if rope is None:
            continue
        if not isinstance(rope, Mapping):
            raise ValueError(f"{key}: expected an object or null, got {rope!r}")
        kind = rope.get("rope_type", rope.get("type", "default"))
        if kind != "default":
            raise ValueError(
                f"{key}: expected plain RoPE (rope_type 'default'), got the {kind!r} kind, "
                "which v7 does not implement"
            )
        theta = rope.get("rope_theta", theta)
    for key in ("tie_word_embeddings", "attention_bias", "mlp_bias"):
        if not isinstance(v[key], bool):
            raise ValueError(f"{key}: expected true or false, got {v[key]!r}")
    for key, number in (("rope_theta", theta), ("attention_dropout", v["attention_dropout"])):
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValueError(f"{key}: expected a number, got {number!r}")
    if v["hidden_act"] != "silu":
        raise ValueError(f"hidden_act: expected 'silu' (SwiGLU), got {v['hidden_act']!r}")
    if v["pretraining_tp"] != 1:
        raise ValueError(f"pretraining_tp: expected 1, got {v['pretraining_tp']!r}")
    if v["attention_bias"] != v["mlp_bias"]:
        raise ValueError(
            f"attention_bias: expected it equal to mlp_bias={v['mlp_bias']} (v7 has one bias "
            f"switch for every linear layer), got {v['attention_bias']}"
        )
    heads, width = v["num_attention_heads"], v["hidden_size"]
    if v["head_dim"] is not None and v["head_dim"] * heads != width:
        raise ValueError(
            f"head_dim: expected hidden_size / num_attention_heads = {width}/{heads} (v7 has no "
            f"separate head size), got {v['head_dim']}"
        )
    return ModernConfig.llama(
        vocab_size=v["vocab_size"],
        n_positions=v["max_position_embeddings"],
        n_embd=width,
        n_layer=v["num_hidden_layers"],
        n_head=heads,
        n_kv_head=v["num_key_value_heads"],
        n_inner=v["intermediate_size"],
        layer_norm_epsilon=v["rms_norm_eps"],
        rope_theta=float(theta),
        bias=v["attention_bias"],
        tie_word_embeddings=v["tie_word_embeddings"],
        attn_pdrop=float(v["attention_dropout"]),
    )
