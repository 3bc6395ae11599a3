"""v3_positional: position vectors added to the token embeddings, so attention can see order.

Two kinds: the paper's fixed sinusoidal encoding and learned position embeddings.
Attention itself is v2's, imported unchanged.
"""

from transformer.v3_positional.encoding import (
    POSITIONAL_KINDS,
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    make_positions,
    sinusoidal_encoding,
)
from transformer.v3_positional.model import PositionalModel, build_sequence_model

__all__ = [
    "POSITIONAL_KINDS",
    "LearnedPositionalEmbedding",
    "PositionalModel",
    "SinusoidalPositionalEncoding",
    "build_sequence_model",
    "make_positions",
    "sinusoidal_encoding",
]
