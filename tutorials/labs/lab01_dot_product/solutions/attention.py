"""Lab 01, solved: scaled dot-product attention in four lines."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def attention(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """softmax(QKᵀ/√d_k)V; mask 0 / False = blocked. Returns (output, weights)."""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))  # (..., L, S)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, float("-inf"))  # (..., L, S)
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # a fully blocked row: zeros
    return weights @ value, weights  # (..., L, d_v), (..., L, S)
