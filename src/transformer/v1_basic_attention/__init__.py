"""v1_basic_attention: scaled dot-product attention, softmax(QKᵀ/√d_k)V.

Masks follow the seed tutorial: 0/False = blocked, 1/True = attend.
"""

from transformer.v1_basic_attention.model import (
    AttentionOnlyModel,
    build_sequence_model,
    causal_mask,
)
from transformer.v1_basic_attention.multihead import MultiHeadAttention, merge_heads, split_heads
from transformer.v1_basic_attention.scaled_dot_product import (
    ScaledDotProductAttention,
    attention,
    scaled_scores,
    softmax_over_keys,
)

__all__ = [
    "AttentionOnlyModel",
    "MultiHeadAttention",
    "ScaledDotProductAttention",
    "attention",
    "build_sequence_model",
    "causal_mask",
    "merge_heads",
    "scaled_scores",
    "softmax_over_keys",
    "split_heads",
]
