"""v3's sequence model: v2's, with a position vector added to each token embedding."""

from __future__ import annotations

import math

from transformer._checks import check_bool, check_positive_int
from transformer.contract import ModelConfig, SequenceModel, Setting, get_stage
from transformer.token_model import TokenModel
from transformer.v2_multihead import SETTINGS as V2_SETTINGS
from transformer.v2_multihead import multihead_layer
from transformer.v3_positional.encoding import POSITIONAL_KINDS, make_positions

SETTINGS = V2_SETTINGS | {  # NEW: positions
    "max_len": Setting(512, check_positive_int),
    "positional": Setting("sinusoidal", choices=POSITIONAL_KINDS),
    "scale_embeddings": Setting(False, check_bool),
}


class PositionalModel(TokenModel):
    """Embedding + positions -> ``num_layers`` x multi-head attention -> linear head.

    ``positional`` is ``"sinusoidal"`` (the paper's fixed table, the default) or
    ``"learned"``. The paper multiplies token embeddings by √d_model before adding
    positions; that is off by default here (``scale_embeddings=False``) because
    ``nn.Embedding`` already starts at N(0, 1), the same size as the sinusoids, whereas
    the paper's embeddings share the small-initialised output weights. Both are options of
    the config too (``ModelConfig(..., options={"positional": "learned"})``).
    """

    def __init__(
        self,
        config: ModelConfig,
        positional: str | None = None,
        scale_embeddings: bool | None = None,
    ) -> None:
        config = config.with_options(positional=positional, scale_embeddings=scale_embeddings)
        config = get_stage("v3").resolve(config)
        super().__init__(
            config,
            lambda: multihead_layer(config),
            make_positions=lambda: positions_for(config),
            embedding_scale=embedding_scale(config),
        )


def positions_for(config: ModelConfig):
    """The position vectors a resolved v3 (or later) config asks for."""
    return make_positions(config.options["positional"], config.max_len, config.d_model)


def embedding_scale(config: ModelConfig) -> float:
    """√d_model with ``scale_embeddings`` (the paper), else 1."""
    return math.sqrt(config.d_model) if config.options["scale_embeddings"] else 1.0


def build_sequence_model(config: ModelConfig) -> SequenceModel:
    """The stage contract's entry point for v3 (sinusoidal positions unless asked otherwise)."""
    return PositionalModel(config)
