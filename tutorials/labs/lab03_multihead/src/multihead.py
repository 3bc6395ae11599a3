"""Lab 03: multi-head attention. Fill in split_heads, merge_heads and MultiHeadAttention.

Check your work with: poetry run pytest tests/ (in tutorials/labs/lab03_multihead)
"""

from __future__ import annotations

import math  # noqa: F401

import torch  # noqa: F401
from torch import Tensor, nn


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(batch, seq, d_model) -> (batch, num_heads, seq, head_dim), head_dim = d_model // num_heads.

    Head h gets features [h * head_dim, (h + 1) * head_dim) of every position.
    """
    # (B, T, E) -> (B, T, H, D) -> (B, H, T, D)
    raise NotImplementedError("lab03: implement split_heads() in multihead.py")


def merge_heads(x: Tensor) -> Tensor:
    """(batch, num_heads, seq, head_dim) -> (batch, seq, num_heads * head_dim); undoes split."""
    # (B, H, T, D) -> (B, T, H, D) -> (B, T, E)
    raise NotImplementedError("lab03: implement merge_heads() in multihead.py")


class MultiHeadAttention(nn.Module):
    """v1's multi-head attention over (batch, seq, d_model) inputs.

    Needs four nn.Linear(d_model, d_model) layers named w_q, w_k, w_v, w_o (the check
    copies known weights into them by these names).
    forward(query (B, L, E), key (B, S, E), value (B, S, E), mask) returns
    (output (B, L, E), weights (B, H, L, S)). mask follows v1's convention
    (0 / False = blocked) and broadcasts to (B, H, L, S).
    """

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        raise NotImplementedError("lab03: implement __init__(): create w_q, w_k, w_v and w_o")

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        # 1. project:  q, k, v = w_q(query), w_k(key), w_v(value)       # (B, L or S, E)
        # 2. split:    (B, T, E) -> (B, H, T, D)
        # 3. attend:   softmax(q kᵀ / √head_dim) v, mask as in lab01   # (B, H, L, D)
        # 4. merge:    (B, H, L, D) -> (B, L, E)
        # 5. project out with w_o                                       # (B, L, E)
        raise NotImplementedError("lab03: implement MultiHeadAttention.forward()")
