"""Rotary position embeddings (RoPE): position enters attention as a rotation of q and k.

Split a head's ``head_dim`` features into pairs; pair i at position m is rotated by the
angle m·θᵢ with θᵢ = theta^(-2i/head_dim). A rotation by m·θ of q and by n·θ of k leaves
their dot product depending on (m - n) only, so attention sees relative position, and any
position has angles: nothing stops at a largest position, as learned embeddings do.

Which features make a pair is a convention, and the two in use are not interchangeable:

* **half-split** (Hugging Face Llama, GPT-NeoX, used here): feature i pairs with feature
  i + head_dim/2, so ``rotate_half(x) = cat(-x[d/2:], x[:d/2])``;
* **interleaved** (the RoFormer paper, Meta's original Llama code): feature 2i pairs with
  2i + 1.

They give the same model after permuting the q and k projection rows; weights trained with
one convention give wrong numbers under the other. Positions start at 0.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from transformer._checks import check_number, check_positive_int


def rope_frequencies(
    head_dim: int, theta: float = 10000.0, device: torch.device | None = None
) -> Tensor:
    """θᵢ = theta^(-2i/head_dim) for i < head_dim/2: (head_dim // 2,) float32."""
    check_positive_int("head_dim", head_dim)
    if head_dim % 2:
        raise ValueError(f"head_dim: expected an even number (RoPE rotates pairs), got {head_dim}")
    check_number("theta", theta, 1.0)
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim
    return 1.0 / (theta**exponents)  # (D/2,)


def rotate_half(x: Tensor) -> Tensor:
    """The half-split pairing's 90° turn: (x₁, x₂) -> (-x₂, x₁) on the two halves of dim -1."""
    first, second = x.chunk(2, dim=-1)  # (..., D/2) each
    return torch.cat([-second, first], dim=-1)  # (..., D)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x (B, H, T, D) rotated by the angles whose cos and sin are (T, D), or (B, T, D) when
    each row has its own positions -> (B, H, T, D)."""
    if cos.dim() == 3:  # per-row positions: the same angles for every head of a row
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, T, D) each
    return x * cos + rotate_half(x) * sin  # (B, H, T, D)


class RotaryEmbedding(nn.Module):
    """The cos and sin tables of RoPE for any positions, computed in float32.

    ``forward(positions, dtype)`` maps positions (T,) -> cos, sin (T, head_dim), or (B, T)
    -> (B, T, head_dim), each angle repeated for both features of its pair (half-split
    layout). There are no parameters and
    no buffers: the frequencies are made in float32 on each call (head_dim/2 numbers), so
    ``model.to(torch.bfloat16)`` cannot round them.
    """

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        rope_frequencies(head_dim, theta)  # checks the arguments
        self.head_dim = head_dim
        self.theta = float(theta)

    def forward(self, positions: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        inv_freq = rope_frequencies(self.head_dim, self.theta, positions.device)  # (D/2,)
        angles = positions.float()[..., None] * inv_freq  # (T, D/2) or (B, T, D/2)
        angles = torch.cat([angles, angles], dim=-1)  # (.., T, D): pair i at i and i + D/2
        return angles.cos().to(dtype), angles.sin().to(dtype)  # (.., T, D) each
