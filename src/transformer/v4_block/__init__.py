"""v4_block: the transformer block, a drop-in for nn.TransformerEncoderLayer, and a stack of them.

Attention is v2's and positions are v3's, both imported unchanged.
"""

from transformer.v4_block.block import (
    TransformerBlock,
    TransformerEncoderLayer,
    blocked_future,
    resolve_activation,
)
from transformer.v4_block.model import TransformerModel, build_sequence_model
from transformer.v4_block.stack import TransformerEncoder

__all__ = [
    "TransformerBlock",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "TransformerModel",
    "blocked_future",
    "build_sequence_model",
    "resolve_activation",
]
