"""v4's sequence model: v3's embedding + positions, then N transformer blocks, then a head."""

from __future__ import annotations

from torch import Tensor, nn

from transformer.contract import ModelConfig, SequenceModel
from transformer.v3_positional import PositionalModel
from transformer.v4_block.block import TransformerBlock, blocked_future


class TransformerModel(PositionalModel):
    """Embedding + positions -> ``num_layers`` blocks -> (final LayerNorm if pre-norm) -> head.

    The blocks are post-norm as in the paper unless ``norm_first=True``; a pre-norm
    stack needs a final LayerNorm because its residual stream is never normalised.
    The feed-forward width is ``ff_multiplier * d_model`` (4x, as in the paper).
    """

    def __init__(
        self,
        config: ModelConfig,
        positional: str = "sinusoidal",
        norm_first: bool = False,
        activation: str = "relu",
        ff_multiplier: int = 4,
    ) -> None:
        self.norm_first = norm_first
        self.activation = activation
        self.ff_multiplier = ff_multiplier
        super().__init__(config, positional=positional)
        self.final_norm = nn.LayerNorm(config.d_model) if norm_first else nn.Identity()

    def make_attention(self) -> nn.Module:
        cfg = self.config
        return TransformerBlock(
            cfg.d_model,
            cfg.num_heads,
            dim_feedforward=self.ff_multiplier * cfg.d_model,
            dropout=cfg.dropout,
            activation=self.activation,
            batch_first=True,
            norm_first=self.norm_first,
        )

    def self_attend(self, layer: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, d_model) -> (block output (B, T, d_model), weights (B, H, T, T))."""
        mask = blocked_future(x.shape[1], x.device) if self.config.causal else None  # (T, T)
        return layer.forward_with_attention(x, mask, is_causal=self.config.causal)

    def output_logits(self, x: Tensor) -> Tensor:
        return self.head(self.final_norm(x))  # (B, T, vocab_size)


def build_sequence_model(config: ModelConfig) -> SequenceModel:
    """The stage contract's entry point for v4 (post-norm, ReLU, sinusoidal positions)."""
    return TransformerModel(config)
