"""Grouped-query attention (GQA), with rotary positions as a switch.

``num_heads`` query heads share ``num_kv_heads`` key/value heads: query head h reads
key/value head h // (num_heads / num_kv_heads). ``num_kv_heads == num_heads`` is v2's
multi-head attention; ``num_kv_heads == 1`` is multi-query attention (MQA). Fewer key/value
heads mean a smaller key/value cache at generation time, for the same queries.

Everything else is v2's: one packed input projection, split into heads, v1's ``attend``
core (the explicit softmax when the weights are wanted, the fused kernel otherwise), merge,
project out. With ``num_kv_heads == num_heads`` the parameters have v2's names and shapes
(``in_proj_weight`` (3E, E), ``in_proj_bias``, ``out_proj``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from transformer._checks import check_divisible, check_positive_int, check_probability
from transformer.v1_basic_attention import attend, merge_heads, split_heads
from transformer.v7_modern.rope import RotaryEmbedding, apply_rope


def repeat_kv(x: Tensor, groups: int) -> Tensor:
    """(B, H_kv, T, D) -> (B, H_kv·groups, T, D): each key/value head serves ``groups`` queries."""
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)  # (B, H, T, D)


class GroupedQueryAttention(nn.Module):
    """Self-attention of x (B, T, E) with ``num_heads`` query and ``num_kv_heads`` kv heads.

    ``rope_theta`` None: no rotation (positions come from elsewhere, as in GPT-2);
    a number: q and k are rotated by RoPE before the scores. ``dropout`` is on the weights.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        rope_theta: float | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("embed_dim", embed_dim)
        check_positive_int("num_heads", num_heads)
        check_divisible("embed_dim", embed_dim, "num_heads", num_heads)
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        check_positive_int("num_kv_heads", num_kv_heads)
        check_divisible("num_heads", num_heads, "num_kv_heads", num_kv_heads)
        self.embed_dim, self.num_heads, self.num_kv_heads = embed_dim, num_heads, num_kv_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = check_probability("dropout", dropout)
        kv_dim = num_kv_heads * self.head_dim
        self.split_sizes = (embed_dim, kv_dim, kv_dim)  # q, k, v rows of the packed weight
        self.in_proj_weight = nn.Parameter(torch.empty(embed_dim + 2 * kv_dim, embed_dim))
        if bias:
            self.in_proj_bias = nn.Parameter(torch.zeros(embed_dim + 2 * kv_dim))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        nn.init.xavier_uniform_(self.in_proj_weight)
        self.rotary = None if rope_theta is None else RotaryEmbedding(self.head_dim, rope_theta)

    def project(self, x: Tensor, positions: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, T, E) -> q (B, H, T, D), k and v (B, H_kv, T, D), q and k rotated by RoPE.

        ``positions`` (T,) are the tokens' positions (default 0..T-1), or (B, T) when each
        row has its own (left-padded rows in a batch)."""
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).split(
            self.split_sizes, dim=-1
        )  # (B, T, E), (B, T, H_kv·D), (B, T, H_kv·D)
        q = split_heads(q, self.num_heads)  # (B, H, T, D)
        k = split_heads(k, self.num_kv_heads)  # (B, H_kv, T, D)
        v = split_heads(v, self.num_kv_heads)  # (B, H_kv, T, D)
        if self.rotary is not None:  # NEW in v7: position as a rotation of q and k
            if positions is None:
                positions = torch.arange(x.shape[1], device=x.device)  # (T,)
            cos, sin = self.rotary(positions, q.dtype)  # (T, D) or (B, T, D) each
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)  # (B, H or H_kv, T, D)
        return q, k, v

    def self_attend(
        self, x: Tensor, *, causal: bool, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """x (B, T, E) -> output (B, T, E), weights (B, H, T, T) or None (fused path)."""
        q, k, v = self.project(x)  # (B, H, T, D), (B, H_kv, T, D) x 2
        return self.attend_heads(q, k, v, causal=causal, need_weights=need_weights)

    def attend_heads(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        bias: Tensor | None = None,
        *,
        causal: bool,
        need_weights: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """q (B, H, L, D), k and v (B, H_kv, S, D) -> output (B, L, E), weights (B, H, L, S)
        or None: each key/value head serves its query heads, v1's ``attend`` (``bias``
        additive, broadcast to (B, H, L, S)), merge, project out."""
        groups = self.num_heads // self.num_kv_heads
        k, v = repeat_kv(k, groups), repeat_kv(v, groups)  # (B, H, S, D) each
        dropout_p = self.dropout if self.training else 0.0
        attended, weights = attend(
            q, k, v, bias, causal=causal, dropout_p=dropout_p, need_weights=need_weights
        )  # (B, H, L, D), (B, H, L, S) or None
        return self.out_proj(merge_heads(attended)), weights  # (B, L, E)

    def forward(self, x: Tensor, causal: bool = True) -> Tensor:
        """x (B, T, E) -> (B, T, E), causal by default, on the fused path."""
        return self.self_attend(x, causal=causal, need_weights=False)[0]
