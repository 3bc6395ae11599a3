"""The common mistakes, computed on purpose, so that a check can recognise them.

``attention_variant`` is v1's attention with one thing done wrong; ``multihead_variant`` is
v1's multi-head attention with one step done wrong. With no keyword they give the correct
result. Fully blocked rows get zero weights (v1's ``softmax_over_keys``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from transformer.v1_basic_attention import (
    MultiHeadAttention,
    merge_heads,
    scaled_scores,
    softmax_over_keys,
    split_heads,
)


def attention_variant(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None = None,
    *,
    divide_by: float | None = None,
    softmax_dim: int = -1,
    mask_mode: str = "correct",
) -> tuple[Tensor, Tensor]:
    """Seed attention, optionally wrong in one way; returns (output (..., L, d_v), weights).

    divide_by: divide QKᵀ by this instead of √d_k (1.0 = no scaling).
    softmax_dim: -2 normalises over the queries instead of the keys.
    mask_mode: "inverted" blocks where mask != 0, "ignored" skips the mask, "zero_fill" sets
    blocked scores to 0 instead of -inf, "after_softmax" zeroes blocked weights afterwards.
    """
    if divide_by is None:
        scores = scaled_scores(query, key)  # (..., L, S)
    else:
        scores = query @ key.transpose(-2, -1) / divide_by  # (..., L, S)
    if mask is not None and mask_mode in ("correct", "inverted", "zero_fill"):
        blocked = (mask != 0) if mask_mode == "inverted" else (mask == 0)  # (..., L, S)
        fill = 0.0 if mask_mode == "zero_fill" else float("-inf")
        scores = scores.masked_fill(blocked, fill)  # (..., L, S)
    if softmax_dim == -1:
        weights = softmax_over_keys(scores)  # (..., L, S)
    else:  # over the queries; a fully blocked key column gets zeros
        weights = softmax_over_keys(scores.transpose(-2, -1)).transpose(-2, -1)  # (..., L, S)
    if mask is not None and mask_mode == "after_softmax":
        weights = weights * (mask != 0)  # (..., L, S)
    return weights @ value, weights  # (..., L, d_v), (..., L, S)


def split_without_transpose(x: Tensor, num_heads: int) -> Tensor:
    """Mistake: (B, T, E) reshaped straight to (B, H, T, D), mixing positions into heads."""
    batch, seq, embed = x.shape
    return x.reshape(batch, num_heads, seq, embed // num_heads)  # (B, H, T, D)


def split_interleaved(x: Tensor, num_heads: int) -> Tensor:
    """Mistake: head h takes every H-th feature instead of one contiguous block."""
    batch, seq, embed = x.shape
    return x.reshape(batch, seq, embed // num_heads, num_heads).permute(0, 3, 1, 2)  # (B,H,T,D)


def merge_without_transpose(x: Tensor) -> Tensor:
    """Mistake: (B, H, T, D) reshaped straight to (B, T, H*D), mixing heads into positions."""
    batch, heads, seq, head_dim = x.shape
    return x.reshape(batch, seq, heads * head_dim)  # (B, T, E)


def merge_interleaved(x: Tensor) -> Tensor:
    """Mistake: features ordered (D, H) instead of (H, D) when merging."""
    batch, heads, seq, head_dim = x.shape
    return x.permute(0, 2, 3, 1).reshape(batch, seq, heads * head_dim)  # (B, T, E)


def multihead_variant(
    module: MultiHeadAttention,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None = None,
    *,
    split: Callable[[Tensor, int], Tensor] = split_heads,
    merge: Callable[[Tensor], Tensor] = merge_heads,
    divide_by: float | None = None,
    mask_mode: str = "correct",
    swap_query_key: bool = False,
    project_out: bool = True,
) -> tuple[Tensor, Tensor]:
    """The seed's multi-head attention with ``module``'s weights, optionally wrong in one way.

    Returns output (B, L, d_model) and weights (B, H, L, S).
    """
    w_q, w_k = (module.w_k, module.w_q) if swap_query_key else (module.w_q, module.w_k)
    heads = module.num_heads
    q = split(w_q(query), heads)  # (B, H, L, D)
    k = split(w_k(key), heads)  # (B, H, S, D)
    v = split(module.w_v(value), heads)  # (B, H, S, D)
    attended, weights = attention_variant(
        q, k, v, mask, divide_by=divide_by, mask_mode=mask_mode
    )  # (B, H, L, D), (B, H, L, S)
    merged = merge(attended)  # (B, L, d_model)
    return (module.w_o(merged) if project_out else merged), weights
