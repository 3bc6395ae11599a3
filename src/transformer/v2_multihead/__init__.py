"""v2_multihead: several attention heads in parallel, a drop-in for nn.MultiheadAttention.

Masks follow PyTorch here: True = blocked, floating masks are added to the scores.
"""

from transformer.v2_multihead.model import (
    SETTINGS,
    MultiHeadAttentionModel,
    build_sequence_model,
    multihead_layer,
)
from transformer.v2_multihead.multihead import MultiHeadAttention

__all__ = [
    "SETTINGS",
    "MultiHeadAttention",
    "MultiHeadAttentionModel",
    "build_sequence_model",
    "multihead_layer",
]
