"""Lab 07: rotary position embeddings (RoPE) and RMSNorm, two parts of the modern decoder.

Fill in rope_frequencies, rotate_half, rope and RMSNorm.
Check your work with: poetry run pytest tests/ (in tutorials/labs/lab07_rope_rmsnorm)
"""

from __future__ import annotations

import torch  # noqa: F401
from torch import Tensor, nn


def rope_frequencies(head_dim: int, theta: float = 10000.0) -> Tensor:
    """The rate of each pair of features: θᵢ = theta^(-2i/head_dim) for i = 0 .. head_dim/2 - 1.

    Returns (head_dim // 2,) float32. Pair 0 turns fastest (1 radian per position), the
    last pair slowest. 2i runs over the even feature indices 0, 2, 4, ..., head_dim - 2.
    """
    raise NotImplementedError("lab07: implement rope_frequencies() in modern.py")


def rotate_half(x: Tensor) -> Tensor:
    """The 90° turn of every pair, half-split pairing: feature i pairs with i + head_dim/2.

    x (..., D) split into halves x₁ = x[..., :D/2] and x₂ = x[..., D/2:] -> cat(-x₂, x₁),
    of x's shape.
    """
    raise NotImplementedError("lab07: implement rotate_half()")


def rope(x: Tensor, theta: float = 10000.0) -> Tensor:
    """x (..., seq_len, head_dim), e.g. queries (B, H, T, D), rotated by RoPE.

    The row at position m = 0, 1, ..., seq_len - 1 (dim -2) has each pair i rotated by the
    angle m·θᵢ:  rope(x) = x·cos + rotate_half(x)·sin, where cos and sin are (seq_len,
    head_dim) tables holding angle m·θᵢ at both features of pair i, i and i + head_dim/2.
    Returns x's shape and dtype.
    """
    # 1. positions m = 0, 1, ..., seq_len - 1 along dim -2              # (T,)
    # 2. angles m·θᵢ, with your rope_frequencies(head_dim, theta)        # (T, D/2)
    # 3. repeat them for both halves: torch.cat([angles, angles], -1)    # (T, D)
    # 4. x·cos + rotate_half(x)·sin                                      # (..., T, D)
    raise NotImplementedError("lab07: implement rope()")


class RMSNorm(nn.Module):
    """LayerNorm without the mean: x / √(mean(x², dim=-1) + eps) · weight.

    weight: nn.Parameter (dim,), starting at 1; no bias. x (..., dim) -> the same shape.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        raise NotImplementedError("lab07: implement __init__(): keep eps, create self.weight")

    def forward(self, x: Tensor) -> Tensor:
        # 1. the mean of x² over the last axis, keepdim=True           # (..., 1)
        # 2. x divided by √(that + eps): ε inside the root              # (..., dim)
        # 3. times the weight                                          # (..., dim)
        raise NotImplementedError("lab07: implement RMSNorm.forward()")
