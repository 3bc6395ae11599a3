"""The sequence model that stages v1-v4 assemble from their parts.

    tokens -> embedding (x scale) -> + positions -> N layers -> final norm -> linear head

A stage passes its own parts: v1 its one-head attention, v2 multi-head attention, v3 adds
position vectors, v4 swaps the layers for transformer blocks and adds a final LayerNorm.
Each layer follows one small protocol::

    layer.self_attend(x, causal=..., need_weights=...) -> (output, weights or None)

with x and output (batch, seq, d_model) and weights (batch, heads, seq, seq).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from transformer.contract import ModelConfig, SequenceModel


class TokenModel(SequenceModel):
    """Embedding -> (positions) -> ``config.num_layers`` layers -> (final norm) -> head.

    Parts are made in a fixed order (embedding, layers, head, positions, final norm), so
    one seed gives one set of weights whichever parts a stage uses.
    """

    def __init__(
        self,
        config: ModelConfig,
        make_layer: Callable[[], nn.Module],
        *,
        make_positions: Callable[[], nn.Module] | None = None,
        make_final_norm: Callable[[], nn.Module] | None = None,
        embedding_scale: float = 1.0,
    ) -> None:
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(make_layer() for _ in range(config.num_layers))
        self.head = nn.Linear(config.d_model, config.vocab_size)
        self.positions = None if make_positions is None else make_positions()
        self.final_norm = nn.Identity() if make_final_norm is None else make_final_norm()
        self.embedding_scale = embedding_scale

    def input_vectors(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) -> what the first layer reads (B, T, d_model)."""
        x = self.embed(tokens)  # (B, T, d_model)
        if self.embedding_scale != 1.0:
            x = x * self.embedding_scale  # (B, T, d_model)
        return x if self.positions is None else self.positions(x)  # (B, T, d_model)

    def run(self, tokens: Tensor, need_weights: bool) -> tuple[Tensor, list[Tensor] | None]:
        x = self.input_vectors(tokens)  # (B, T, d_model)
        maps = []
        for layer in self.layers:
            x, weights = layer.self_attend(
                x, causal=self.config.causal, need_weights=need_weights
            )  # (B, T, d_model), (B, H, T, T) or None
            maps.append(weights)
        logits = self.head(self.final_norm(x))  # (B, T, vocab_size)
        return logits, (maps if need_weights else None)
