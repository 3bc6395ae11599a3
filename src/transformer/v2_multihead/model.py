"""v2's sequence model: v1's model with multi-head attention swapped in."""

from __future__ import annotations

from torch import Tensor, nn

from transformer.contract import ModelConfig, SequenceModel
from transformer.v1_basic_attention import AttentionOnlyModel, causal_mask
from transformer.v2_multihead.multihead import MultiHeadAttention


class MultiHeadAttentionModel(AttentionOnlyModel):
    """Embedding -> ``num_layers`` x ``config.num_heads``-head attention -> linear head."""

    def make_attention(self) -> nn.Module:
        cfg = self.config
        return MultiHeadAttention(cfg.d_model, cfg.num_heads, dropout=cfg.dropout, batch_first=True)

    def self_attend(self, layer: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, d_model) -> (output (B, T, d_model), weights (B, H, T, T))."""
        blocked = ~causal_mask(x.shape[1], x.device) if self.config.causal else None  # (T, T)
        return layer(
            x,
            x,
            x,
            attn_mask=blocked,
            need_weights=True,
            average_attn_weights=False,
            is_causal=self.config.causal,
        )


def build_sequence_model(config: ModelConfig) -> SequenceModel:
    """The stage contract's entry point for v2."""
    return MultiHeadAttentionModel(config)
