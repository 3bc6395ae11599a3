"""Lab 01: scaled dot-product attention, softmax(QKᵀ/√d_k)V. Fill in ``attention``.

Check your work with: poetry run pytest tests/ (in tutorials/labs/lab01_dot_product)
"""

from __future__ import annotations

import math  # noqa: F401  (you will want math.sqrt)

import torch  # noqa: F401
from torch import Tensor


def attention(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Scaled dot-product attention.

    query (..., L, d_k), key (..., S, d_k), value (..., S, d_v); "..." is (batch,) or
    (batch, heads). mask: None, or broadcastable to (..., L, S), where 0 / False means
    "query i may not look at key j" and 1 / True means it may (v1's convention, 1 = attend).

    Returns (output (..., L, d_v), weights (..., L, S)); each row of weights sums to 1.
    """
    # 1. scores: every query against every key, divided by √d_k     # (..., L, S)
    # 2. mask:   blocked scores become -inf, so that exp() gives 0    # (..., L, S)
    # 3. weights: softmax over the keys                               # (..., L, S)
    # 4. output: weighted average of the values                       # (..., L, d_v)
    raise NotImplementedError("lab01: implement attention() in lab01_dot_product/src/attention.py")
