"""v4_block: the transformer block, a drop-in for nn.TransformerEncoderLayer, and a stack of them.

Attention is v2's and positions are v3's, both imported unchanged.
"""

from transformer.v4_block.block import (
    ACTIVATIONS,
    TransformerBlock,
    TransformerEncoderLayer,
    check_block_arguments,
    resolve_activation,
)
from transformer.v4_block.model import SETTINGS, TransformerModel, block_for, build_sequence_model
from transformer.v4_block.stack import TransformerEncoder

__all__ = [
    "ACTIVATIONS",
    "SETTINGS",
    "TransformerBlock",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "TransformerModel",
    "block_for",
    "build_sequence_model",
    "check_block_arguments",
    "resolve_activation",
]
