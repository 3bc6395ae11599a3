"""v3's sequence model: v2's model with position vectors added to the token embeddings."""

from __future__ import annotations

import math

from torch import Tensor

from transformer.contract import ModelConfig, SequenceModel
from transformer.v2_multihead import MultiHeadAttentionModel
from transformer.v3_positional.encoding import make_positions


class PositionalModel(MultiHeadAttentionModel):
    """Embedding + positions -> ``num_layers`` x multi-head attention -> linear head.

    ``positional`` is ``"sinusoidal"`` (the paper's fixed table, the default) or
    ``"learned"``. The paper multiplies token embeddings by √d_model before adding
    positions; that is off by default here (``scale_embeddings=False``) because
    ``nn.Embedding`` already starts at N(0, 1), the same size as the sinusoids, whereas
    the paper's embeddings share the small-initialised output weights.
    """

    def __init__(
        self, config: ModelConfig, positional: str = "sinusoidal", scale_embeddings: bool = False
    ) -> None:
        super().__init__(config)
        self.positions = make_positions(positional, config.max_len, config.d_model)
        if not isinstance(scale_embeddings, bool):
            raise TypeError(f"scale_embeddings: expected a bool, got {scale_embeddings!r}")
        self.embedding_scale = math.sqrt(config.d_model) if scale_embeddings else 1.0

    def check_tokens(self, tokens: Tensor) -> None:
        super().check_tokens(tokens)
        if tokens.shape[1] > self.config.max_len:
            raise ValueError(
                f"tokens: expected seq_len <= max_len={self.config.max_len}, got seq_len="
                f"{tokens.shape[1]}; build the model with a larger ModelConfig(max_len=...)"
            )

    def input_vectors(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) -> token embedding (scaled if asked) + position vector (B, T, d_model)."""
        return self.positions(self.embed(tokens) * self.embedding_scale)  # (B, T, d_model)


def build_sequence_model(config: ModelConfig) -> SequenceModel:
    """The stage contract's entry point for v3 (sinusoidal positions)."""
    return PositionalModel(config)
