"""v1's sequence model: token embedding -> attention -> linear head, with no positions.

v1 uses a single head (the stage's idea is basic attention); ``config.num_heads`` is
ignored here and used from v2 on.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from transformer.contract import ModelConfig, SequenceModel
from transformer.v1_basic_attention.multihead import MultiHeadAttention


def causal_mask(seq_len: int, device: torch.device | None = None) -> Tensor:
    """Seed-convention causal mask (seq_len, seq_len): True where query i may see key j <= i."""
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()  # (T, T)


class AttentionOnlyModel(SequenceModel):
    """Embedding -> ``num_layers`` attention layers -> linear head; no positional information.

    Later stages override ``make_attention`` and ``self_attend`` to swap the attention in,
    ``input_vectors`` to add positions and ``output_logits`` to change the head.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(self.make_attention() for _ in range(config.num_layers))
        self.head = nn.Linear(config.d_model, config.vocab_size)

    def make_attention(self) -> nn.Module:
        return MultiHeadAttention(self.config.d_model, num_heads=1)

    def self_attend(self, layer: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, d_model) -> (output (B, T, d_model), weights (B, H, T, T))."""
        mask = causal_mask(x.shape[1], x.device) if self.config.causal else None  # (T, T)
        return layer(x, x, x, mask)

    def input_vectors(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) -> the vectors the first layer reads (B, T, d_model)."""
        return self.embed(tokens)  # (B, T, d_model)

    def output_logits(self, x: Tensor) -> Tensor:
        """The last layer's output (B, T, d_model) -> logits (B, T, vocab_size)."""
        return self.head(x)  # (B, T, vocab_size)

    def logits(self, tokens: Tensor) -> Tensor:
        x = self.input_vectors(tokens)  # (B, T, d_model)
        for layer in self.layers:
            x, weights = self.self_attend(layer, x)  # (B, T, d_model), (B, H, T, T)
            self.attention_maps.append(weights.detach())
        return self.output_logits(x)  # (B, T, vocab_size)


def build_sequence_model(config: ModelConfig) -> SequenceModel:
    """The stage contract's entry point for v1."""
    return AttentionOnlyModel(config)
