"""v1_basic_attention: scaled dot-product attention, softmax(QKᵀ/√d_k)V.

Masks here: 1/True = attend, 0/False = blocked, as in ``masked_fill(mask == 0, -inf)``.
Everything lives in ``attention.py``: the function ``attention``, ``ScaledDotProductAttention``
and ``MultiHeadAttention`` with their helpers; ``model.py`` builds the stage's sequence model.
(``transformer.v1_basic_attention.attention`` names the function; the module is
``importlib.import_module("transformer.v1_basic_attention.attention")``, or import from it.)
"""

from transformer.v1_basic_attention.attention import (
    MultiHeadAttention,
    ScaledDotProductAttention,
    attend,
    attention,
    blocked_to_bias,
    causal_bias,
    causal_mask,
    merge_heads,
    scaled_scores,
    softmax_over_keys,
    split_heads,
)
from transformer.v1_basic_attention.model import (
    SETTINGS,
    AttentionOnlyModel,
    build_sequence_model,
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
