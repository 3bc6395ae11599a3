"""v1's multi-head attention: a simple wrapper around ``attention``.

Five steps, each visible below: project, split into heads, attend, merge, project out.
Inputs are batch-first (batch, seq, d_model); the mask follows v1's convention
(0/False = blocked) and broadcasts to (batch, num_heads, query_len, key_len).
``v2_multihead`` grows this into a drop-in replacement for ``nn.MultiheadAttention``.
"""

from __future__ import annotations

from torch import Tensor, nn

from transformer._checks import (
    check_divisible,
    check_floating,
    check_positive_int,
    check_rank,
    check_same_dtype,
    check_size,
    shape_str,
)
from transformer.v1_basic_attention.scaled_dot_product import (
    ScaledDotProductAttention,
    causal_mask,
)


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
