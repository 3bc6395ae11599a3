"""v2's sequence model: v1's, with ``num_heads``-head attention in each layer.

Training takes the fused path (``F.scaled_dot_product_attention``); the weights are
computed only when asked for.
"""

from __future__ import annotations

from transformer.contract import BASE_SETTINGS, ModelConfig, SequenceModel, get_stage
from transformer.token_model import TokenModel
from transformer.v2_multihead.multihead import MultiHeadAttention

SETTINGS = dict(BASE_SETTINGS)  # NEW: num_heads and dropout take any valid value


class MultiHeadAttentionModel(TokenModel):
    """Embedding -> ``num_layers`` x ``num_heads``-head attention -> linear head."""

    def __init__(self, config: ModelConfig) -> None:
        config = get_stage("v2").resolve(config)
        super().__init__(config, lambda: multihead_layer(config))


def multihead_layer(config: ModelConfig) -> MultiHeadAttention:
    """One batch-first multi-head attention layer of the size ``config`` asks for."""
    return MultiHeadAttention(
        config.d_model, config.num_heads, dropout=config.dropout, batch_first=True
    )


def build_sequence_model(config: ModelConfig) -> SequenceModel:
    """The stage contract's entry point for v2 (``config`` resolved by the contract)."""
    return MultiHeadAttentionModel(config)
