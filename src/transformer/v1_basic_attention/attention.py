"""Scaled dot-product attention, the first idea of the transformer.

    attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V

Mask convention (1 = attend): ``mask == 0`` (or ``False``) means *blocked* and 1 (or
``True``) means *attend*, exactly as in ``scores.masked_fill(mask == 0, -inf)``; other values
are refused. This is the opposite of ``nn.MultiheadAttention`` (True = blocked) and the same
as SDPA's boolean masks (True = attend). The mask broadcasts over the leading (batch, head)
dimensions.

Fully blocked rows: a query whose keys are all blocked has no valid softmax (it would be
0/0 = NaN). Like ``F.scaled_dot_product_attention``, we give that row zero weights, so its
output is zero and its gradients stay finite.

:func:`attend` is the one attention core every later module calls (v2's heads, v4's block,
v5's GPT): the explicit softmax above when the weights are wanted, PyTorch's fused kernel
``F.scaled_dot_product_attention`` (the same numbers, no (L, S) weights kept) when not.

The second half of this module is v1's multi-head attention, a simple wrapper around
``attention`` in five visible steps: project, split into heads, attend, merge, project out.
Its inputs are batch-first (batch, seq, d_model); the mask follows the same convention and
broadcasts to (batch, num_heads, query_len, key_len). ``v2_multihead`` grows it into a
drop-in replacement for ``nn.MultiheadAttention``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from transformer._checks import (
    check_divisible,
    check_floating,
    check_positive_int,
    check_rank,
    check_same_dtype,
    check_size,
    check_tensor,
    shape_str,
)

REDUCED = (torch.float16, torch.bfloat16)  # scores of these overflow or round too coarsely


def causal_mask(seq_len: int, device: torch.device | None = None) -> Tensor:
    """Causal mask (seq_len, seq_len), 1 = attend: True where query i may see key j <= i.

    ``~causal_mask(T)`` is the same mask in PyTorch's convention (True = blocked).
    """
    check_positive_int("seq_len", seq_len)
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()  # (T, T)


def blocked_to_bias(blocked: Tensor, dtype: torch.dtype) -> Tensor:
    """A bool mask with True = blocked -> an additive bias: 0 where attended, -inf where blocked."""
    zeros = torch.zeros(blocked.shape, dtype=dtype, device=blocked.device)
    return zeros.masked_fill(blocked, float("-inf"))  # blocked's shape


def causal_bias(
    tgt_len: int, src_len: int, dtype: torch.dtype, device: torch.device | None = None
) -> Tensor:
    """The causal mask as an additive bias (tgt_len, src_len): -inf where key j > query i.

    With tgt_len < src_len the queries are the first ones (SDPA's ``is_causal`` alignment).
    """
    blocked = ~causal_mask(src_len, device)[:tgt_len]  # (L, S) True = blocked
    return blocked_to_bias(blocked, dtype)  # (L, S)


def scaled_scores(query: Tensor, key: Tensor) -> Tensor:
    """Similarity of every query with every key, divided by √d_k.

    query (..., L, d_k), key (..., S, d_k) -> scores (..., L, S).
    Without the √d_k the dot products grow with d_k and push the softmax into saturation.
    Scaling the query first gives the same numbers as dividing QKᵀ, without a second
    (L, S)-sized tensor.
    """
    for name, t, layout in (("query", query, "(..., L, d_k)"), ("key", key, "(..., S, d_k)")):
        check_tensor(name, t)
        if t.dim() < 2:
            raise ValueError(
                f"{name}: expected at least a 2-D tensor {layout}, got shape {shape_str(t.shape)}"
            )
    check_size("key", key, -1, query.shape[-1], "d_k, as in query")
    d_k = query.shape[-1]
    return (query / math.sqrt(d_k)) @ key.transpose(-2, -1)  # (..., L, S)


def softmax_over_keys(scores: Tensor) -> Tensor:
    """Softmax along the key axis; rows that are entirely ``-inf`` become all zeros.

    scores (..., L, S) -> weights (..., L, S), each row summing to 1 (or 0 if fully blocked).
    """
    fully_blocked = torch.isneginf(scores).all(dim=-1, keepdim=True)  # (..., L, 1)
    if not fully_blocked.any():  # the usual case: a plain softmax, no extra (L, S) tensors
        return torch.softmax(scores, dim=-1)  # (..., L, S)
    # softmax of an all -inf row is 0/0 = NaN, in the output and in the gradient; give
    # those rows finite scores first, then zero weights.
    safe_scores = scores.masked_fill(fully_blocked, 0.0)  # (..., L, S)
    weights = torch.softmax(safe_scores, dim=-1)  # (..., L, S)
    return weights.masked_fill(fully_blocked, 0.0)  # (..., L, S)


def check_qkv(query: Tensor, key: Tensor, value: Tensor) -> None:
    """Check that query (..., L, d_k), key (..., S, d_k), value (..., S, d_v) fit together."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        check_tensor(name, t)
        check_floating(name, t)
    if query.dim() < 2:
        raise ValueError(
            "query: expected at least a 2-D tensor (..., seq_len, d_k), "
            f"got {query.dim()}-D with shape {shape_str(query.shape)}"
        )
    for name, t in (("key", key), ("value", value)):
        if t.dim() != query.dim():
            raise ValueError(
                f"{name}: expected {query.dim()}-D like query {shape_str(query.shape)}, "
                f"got {t.dim()}-D with shape {shape_str(t.shape)}"
            )
        if t.shape[:-2] != query.shape[:-2]:
            raise ValueError(
                f"{name}: expected leading (batch, head) sizes {shape_str(query.shape[:-2])} "
                f"like query, got {shape_str(t.shape[:-2])} in shape {shape_str(t.shape)}"
            )
    if key.shape[-1] != query.shape[-1]:
        raise ValueError(
            f"key: expected feature size d_k = {query.shape[-1]} like query, "
            f"got {key.shape[-1]} in shape {shape_str(key.shape)}"
        )
    if value.shape[-2] != key.shape[-2]:
        raise ValueError(
            f"value: expected seq_len = {key.shape[-2]} like key (one value per key), "
            f"got {value.shape[-2]} in shape {shape_str(value.shape)}"
        )
    if key.dtype != query.dtype or value.dtype != query.dtype:
        raise TypeError(
            f"key/value: expected dtype {query.dtype} like query, got {key.dtype}/{value.dtype}"
        )


def check_attend_mask(mask: Tensor, scores_shape: tuple[int, ...]) -> None:
    """Check a 1 = attend mask (0/False = blocked) against scores of shape (..., L, S)."""
    check_tensor("mask", mask)
    scores_shape = torch.Size(scores_shape)
    wanted = f"broadcastable to the scores {shape_str(scores_shape)} (..., query_len, key_len)"
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores_shape:
        raise ValueError(f"mask: expected a shape {wanted}, got {shape_str(mask.shape)}")
    if mask.dtype == torch.bool:
        return
    if mask.is_complex():
        raise TypeError(f"mask: expected bool or 0/1 numbers, got dtype {mask.dtype}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        bad = mask[(mask != 0) & (mask != 1)].flatten()[0].item()
        raise ValueError(
            "mask: expected bool or 0/1 values (1 = attend, 0 = blocked), "
            f"got the value {bad}; an additive mask (0 = attend, -inf = blocked) "
            "belongs to nn.MultiheadAttention's attn_mask, not here"
        )


def attention(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Scaled dot-product attention.

    query (..., L, d_k), key (..., S, d_k), value (..., S, d_v); mask broadcastable to
    (..., L, S) with 0/False = blocked. Returns output (..., L, d_v) and weights (..., L, S).
    """
    check_qkv(query, key, value)
    bias = None
    if mask is not None:  # in float16/bfloat16 the scores are computed in float32 (see attend)
        check_attend_mask(mask, (*query.shape[:-1], key.shape[-2]))
        bias = blocked_to_bias(mask == 0, query.dtype)  # like masked_fill(mask == 0, -inf)
    return attend(query, key, value, bias)  # (..., L, d_v), (..., L, S)


def attend(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    bias: Tensor | None = None,
    *,
    causal: bool = False,
    dropout_p: float = 0.0,
    need_weights: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """The attention core: softmax(QKᵀ/√d_k + bias)V, unchecked (callers check their inputs).

    query (..., L, d_k), key (..., S, d_k), value (..., S, d_v); ``bias`` is additive and
    broadcasts to (..., L, S) (0 = attend, -inf = blocked); ``causal=True`` also blocks key
    j > query i. With ``need_weights`` the explicit path runs and returns the weights
    (..., L, S); otherwise the fused kernel runs and the weights are None. ``dropout_p``
    drops attention weights (pass 0 in eval mode).
    """
    if need_weights:
        if query.dtype in REDUCED:  # like SDPA's CPU kernel: accumulate in float32
            out, weights = attend(
                query.float(), key.float(), value.float(), None if bias is None else bias.float(),
                causal=causal, dropout_p=dropout_p,
            )  # fmt: skip
            return out.to(query.dtype), weights.to(query.dtype)
        scores = scaled_scores(query, key)  # (..., L, S)
        if causal:
            scores = scores + causal_bias(*scores.shape[-2:], scores.dtype, scores.device)
        if bias is not None:
            scores = scores + bias  # (..., L, S)
        weights = softmax_over_keys(scores)  # (..., L, S)
        if dropout_p > 0.0:
            weights = F.dropout(weights, p=dropout_p)  # (..., L, S)
        return weights @ value, weights  # (..., L, d_v), (..., L, S)
    if causal and bias is not None:  # SDPA takes a mask or is_causal, not both
        causal_part = causal_bias(query.shape[-2], key.shape[-2], query.dtype, query.device)
        bias, causal = bias + causal_part, False  # (..., L, S)
    out = F.scaled_dot_product_attention(
        query, key, value, attn_mask=bias, dropout_p=dropout_p, is_causal=causal
    )  # (..., L, d_v)
    return out, None


class ScaledDotProductAttention(nn.Module):
    """``attention`` as a module: forward(query, key, value, mask) -> (output, weights)."""

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        return attention(query, key, value, mask)


# v1's multi-head attention: project, split, attend, merge, project out


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(batch, seq, num_heads * head_dim) -> (batch, num_heads, seq, head_dim)."""
    check_rank("x", x, (3,), "(batch, seq, num_heads * head_dim)")
    check_positive_int("num_heads", num_heads)
    check_divisible("x's last dimension", x.shape[-1], "num_heads", num_heads)
    batch, seq, embed = x.shape
    return x.reshape(batch, seq, num_heads, embed // num_heads).transpose(1, 2)  # (B, H, T, D)


def merge_heads(x: Tensor) -> Tensor:
    """(batch, num_heads, seq, head_dim) -> (batch, seq, num_heads * head_dim)."""
    check_rank("x", x, (4,), "(batch, num_heads, seq, head_dim)")
    batch, heads, seq, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, seq, heads * head_dim)  # (B, T, H*D)


class MultiHeadAttention(nn.Module):
    """v1's multi-head attention over (batch, seq, d_model) inputs.

    forward(query, key, value, mask) -> (output (B, L, d_model), weights (B, H, L, S)).
    """

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        check_positive_int("d_model", d_model)
        check_positive_int("num_heads", num_heads)
        check_divisible("d_model", d_model, "num_heads", num_heads)
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.w_q = nn.Linear(d_model, d_model)
        self.w_k = nn.Linear(d_model, d_model)
        self.w_v = nn.Linear(d_model, d_model)
        self.w_o = nn.Linear(d_model, d_model)
        self.attention = ScaledDotProductAttention()

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        for name, t in (("query", query), ("key", key), ("value", value)):
            check_rank(name, t, (3,), "(batch, seq_len, d_model)")
            check_floating(name, t)
            check_same_dtype(name, t, self.w_q.weight.dtype, "the module's parameter dtype")
            check_size(name, t, -1, self.d_model, "d_model")
        for name, t in (("key", key), ("value", value)):
            if t.shape[0] != query.shape[0]:
                raise ValueError(
                    f"{name}: expected batch = {query.shape[0]} like query, "
                    f"got {t.shape[0]} in shape {shape_str(t.shape)}"
                )
        if value.shape[1] != key.shape[1]:
            raise ValueError(
                f"value: expected seq_len = {key.shape[1]} like key, "
                f"got {value.shape[1]} in shape {shape_str(value.shape)}"
            )

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        self._check_inputs(query, key, value)
        # 1. project
        q = self.w_q(query)  # (B, L, d_model)
        k = self.w_k(key)  # (B, S, d_model)
        v = self.w_v(value)  # (B, S, d_model)
        # 2. split into heads
        q = split_heads(q, self.num_heads)  # (B, H, L, D)
        k = split_heads(k, self.num_heads)  # (B, H, S, D)
        v = split_heads(v, self.num_heads)  # (B, H, S, D)
        # 3. attend, every head at once
        attended, weights = self.attention(q, k, v, mask)  # (B, H, L, D), (B, H, L, S)
        # 4. merge heads
        merged = merge_heads(attended)  # (B, L, d_model)
        # 5. project out
        return self.w_o(merged), weights  # (B, L, d_model), (B, H, L, S)

    def self_attend(
        self, x: Tensor, *, causal: bool, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """x attends to itself: (B, T, d_model) -> (B, T, d_model), weights (B, H, T, T) or None.

        v1 has no fused path: the weights are always computed, and returned when asked for.
        """
        mask = causal_mask(x.shape[1], x.device) if causal else None  # (T, T) 1 = attend
        out, weights = self(x, x, x, mask)  # (B, T, d_model), (B, H, T, T)
        return out, (weights if need_weights else None)
