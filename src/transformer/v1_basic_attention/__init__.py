"""v1_basic_attention: scaled dot-product attention, softmax(QKᵀ/√d_k)V.

Masks here: 1/True = attend, 0/False = blocked, as in ``masked_fill(mask == 0, -inf)``.
"""

from transformer.v1_basic_attention.model import (
    SETTINGS,
    AttentionOnlyModel,
    build_sequence_model,
)
from transformer.v1_basic_attention.multihead import MultiHeadAttention, merge_heads, split_heads
from transformer.v1_basic_attention.scaled_dot_product import (
    ScaledDotProductAttention,
    attend,
    attention,
    blocked_to_bias,
    causal_bias,
    causal_mask,
    scaled_scores,
    softmax_over_keys,
)

__all__ = [
    "SETTINGS",
    "AttentionOnlyModel",
    "MultiHeadAttention",
    "ScaledDotProductAttention",
    "attend",
    "attention",
    "blocked_to_bias",
    "build_sequence_model",
    "causal_bias",
    "causal_mask",
    "merge_heads",
    "scaled_scores",
    "softmax_over_keys",
    "split_heads",
]
