"""Lab 07, solved: rotary position embeddings (half-split pairing) and RMSNorm."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def rope_frequencies(head_dim: int, theta: float = 10000.0) -> Tensor:
    """θᵢ = theta^(-2i/head_dim), one per pair: (head_dim // 2,)."""
    return theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)


def rotate_half(x: Tensor) -> Tensor:
    """(x₁, x₂) -> (-x₂, x₁), the halves of the last axis."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def rope(x: Tensor, theta: float = 10000.0) -> Tensor:
    """Rotate the row at position m by m·θᵢ, pair by pair: x (..., T, D)."""
    seq_len, head_dim = x.shape[-2], x.shape[-1]
    positions = torch.arange(seq_len, dtype=torch.float32)  # (T,)
    angles = positions[:, None] * rope_frequencies(head_dim, theta)[None, :]  # (T, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, D): both features of each pair
    rotated = x.float() * angles.cos() + rotate_half(x.float()) * angles.sin()
    return rotated.to(x.dtype)  # (..., T, D)


class RMSNorm(nn.Module):
    """x / √(mean(x²) + eps) · weight."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        mean_square = x.float().pow(2).mean(dim=-1, keepdim=True)  # (..., 1)
        return (x.float() * torch.rsqrt(mean_square + self.eps)).to(x.dtype) * self.weight
