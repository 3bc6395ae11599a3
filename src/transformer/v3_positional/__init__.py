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
from transformer.v3_positional.model import (
    SETTINGS,
    PositionalModel,
    build_sequence_model,
    embedding_scale,
    positions_for,
)

__all__ = [
    "POSITIONAL_KINDS",
    "SETTINGS",
    "LearnedPositionalEmbedding",
    "PositionalModel",
    "SinusoidalPositionalEncoding",
    "build_sequence_model",
    "embedding_scale",
    "make_positions",
    "positions_for",
    "sinusoidal_encoding",
]
