"""v5's sequence model: the stage contract's view of a GPT."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from transformer._checks import check_positive_int
from transformer.contract import (
    BASE_SETTINGS,
    ModelConfig,
    SequenceModel,
    Setting,
    get_stage,
    optional_probability,
)
from transformer.v5_gpt.config import GPTConfig
from transformer.v5_gpt.decoder import DecoderLM
from transformer.v5_gpt.gpt import GPT

SETTINGS = BASE_SETTINGS | {
    "causal": Setting(
        True,
        choices=(True,),
        why="a GPT is decoder-only: each position sees only itself and earlier ones",
    ),
    "max_len": Setting(512, check_positive_int),
    # GPT-2's three dropouts; None takes ``dropout``
    "embedding_dropout": Setting(None, optional_probability),
    "attention_dropout": Setting(None, optional_probability),
    "residual_dropout": Setting(None, optional_probability),
}


def gpt_sizes(config: ModelConfig) -> dict[str, Any]:
    """A resolved ModelConfig's sizes and dropouts in GPT-2's names; each unset dropout
    takes ``config.dropout``."""

    def rate(option: str) -> float:
        value = config.options[option]
        return config.dropout if value is None else value

    return {
        "vocab_size": config.vocab_size,
        "n_positions": config.max_len,
        "n_embd": config.d_model,
        "n_layer": config.num_layers,
        "n_head": config.num_heads,
        "embd_pdrop": rate("embedding_dropout"),
        "attn_pdrop": rate("attention_dropout"),
        "resid_pdrop": rate("residual_dropout"),
    }


def gpt_config(config: ModelConfig) -> GPTConfig:
    """A v5 ModelConfig -> GPTConfig."""
    return GPTConfig(**gpt_sizes(get_stage("v5").resolve(config)))


class DecoderSequenceModel(SequenceModel):
    """A decoder (``DecoderLM``, as ``self.gpt``) behind the stage contract: the fused path,
    or the explicit one when the attention maps are asked for."""

    def __init__(self, config: ModelConfig, gpt: DecoderLM) -> None:
        super().__init__(config)
        self.gpt = gpt

    def run(self, tokens: Tensor, need_weights: bool) -> tuple[Tensor, list[Tensor] | None]:
        if need_weights:
            return self.gpt.forward_with_attention(tokens)  # (B, T, V), L x (B, H, T, T)
        return self.gpt(tokens), None  # (B, T, V)


class GPTSequenceModel(DecoderSequenceModel):
    """A ``GPT`` behind the stage contract."""

    def __init__(self, config: ModelConfig) -> None:
        config = get_stage("v5").resolve(config)
        super().__init__(config, GPT(gpt_config(config)))


def build_sequence_model(config: ModelConfig) -> SequenceModel:
    """The stage contract's entry point for v5."""
    return GPTSequenceModel(config)
