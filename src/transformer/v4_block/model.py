"""v4's sequence model: v3's embedding + positions, then N transformer blocks, then a head."""

from __future__ import annotations

from torch import nn

from transformer._checks import check_bool, check_positive_int
from transformer.contract import ModelConfig, SequenceModel, Setting, get_stage
from transformer.token_model import TokenModel
from transformer.v3_positional import SETTINGS as V3_SETTINGS
from transformer.v3_positional import embedding_scale, positions_for
from transformer.v4_block.block import ACTIVATIONS, TransformerBlock

SETTINGS = V3_SETTINGS | {  # NEW: the block's own choices
    "norm_first": Setting(False, check_bool),
    "activation": Setting("relu", choices=tuple(ACTIVATIONS)),
    "ff_multiplier": Setting(4, check_positive_int),
}


class TransformerModel(TokenModel):
    """Embedding + positions -> ``num_layers`` blocks -> (final LayerNorm if pre-norm) -> head.

    The blocks are post-norm as in the paper unless ``norm_first=True``; a pre-norm
    stack needs a final LayerNorm because its residual stream is never normalised.
    The feed-forward width is ``ff_multiplier * d_model`` (4x, as in the paper).
    """

    def __init__(
        self,
        config: ModelConfig,
        positional: str | None = None,
        norm_first: bool | None = None,
        activation: str | None = None,
        ff_multiplier: int | None = None,
    ) -> None:
        config = config.with_options(
            positional=positional,
            norm_first=norm_first,
            activation=activation,
            ff_multiplier=ff_multiplier,
        )
        config = get_stage("v4").resolve(config)
        pre_norm = config.options["norm_first"]
        super().__init__(
            config,
            lambda: block_for(config),
            make_positions=lambda: positions_for(config),
            make_final_norm=(lambda: nn.LayerNorm(config.d_model)) if pre_norm else None,
            embedding_scale=embedding_scale(config),
        )


def block_for(config: ModelConfig) -> TransformerBlock:
    """One batch-first block of the size and kind a resolved v4 config asks for."""
    options = config.options
    return TransformerBlock(
        config.d_model,
        config.num_heads,
        dim_feedforward=options["ff_multiplier"] * config.d_model,
        dropout=config.dropout,
        activation=options["activation"],
        batch_first=True,
        norm_first=options["norm_first"],
    )


def build_sequence_model(config: ModelConfig) -> SequenceModel:
    """The stage contract's entry point for v4 (post-norm, ReLU, sinusoidal positions)."""
    return TransformerModel(config)
