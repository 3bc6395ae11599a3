"""v1's sequence model: token embedding -> one-head attention layers -> linear head.

No positions: order is visible only through the causal mask. One head: the stage's idea
is basic attention, so ``num_heads`` takes only 1 and there is no dropout.
"""

from __future__ import annotations

from transformer.contract import BASE_SETTINGS, ModelConfig, SequenceModel, Setting, get_stage
from transformer.token_model import TokenModel
from transformer.v1_basic_attention.attention import MultiHeadAttention, causal_mask

SETTINGS = BASE_SETTINGS | {
    "num_heads": Setting(1, choices=(1,), why="basic attention has one head; heads come in v2"),
    "dropout": Setting(0.0, choices=(0.0,), why="v1 has no dropout"),
}


class AttentionOnlyModel(TokenModel):
    """Embedding -> ``num_layers`` one-head attention layers -> linear head."""

    def __init__(self, config: ModelConfig) -> None:
        config = get_stage("v1").resolve(config)
        super().__init__(config, lambda: MultiHeadAttention(config.d_model, num_heads=1))


def build_sequence_model(config: ModelConfig) -> SequenceModel:
    """The stage contract's entry point for v1 (``config`` resolved by the contract)."""
    return AttentionOnlyModel(config)


__all__ = ["SETTINGS", "AttentionOnlyModel", "build_sequence_model", "causal_mask"]
