"""RMSNorm: LayerNorm without the mean. Scale each vector to unit root-mean-square, then gain.

    rmsnorm(x) = x / √(mean(x²) + ε) · weight

LayerNorm subtracts the mean and divides by the standard deviation, then adds a bias;
RMSNorm skips the mean and the bias (fewer operations, one parameter vector fewer) and
trains as well in practice. ε sits inside the square root. As in Hugging Face Llama, the
statistics are computed in float32 (float64 stays float64) and the result is cast back
before the gain.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from transformer._checks import check_number, check_positive_int


class RMSNorm(nn.Module):
    """x (..., dim) -> x / √(mean(x², dim=-1) + eps) · weight, same shape; ``weight`` starts at 1.

    Numerically ``torch.nn.RMSNorm(dim, eps)`` with the same weight.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        if check_number("eps", eps, 0.0) == 0.0:
            raise ValueError(f"eps: expected a number > 0, got {eps!r}")
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(dim))  # (dim,)

    def forward(self, x: Tensor) -> Tensor:
        wide = x.to(torch.promote_types(x.dtype, torch.float32))  # (..., dim), >= float32
        mean_square = wide.pow(2).mean(dim=-1, keepdim=True)  # (..., 1)
        normalised = wide * torch.rsqrt(mean_square + self.eps)  # (..., dim)
        return self.weight * normalised.to(x.dtype)  # (..., dim)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def make_norm(kind: str, dim: int, eps: float, bias: bool = True) -> nn.Module:
    """``"layernorm"`` (v4's, with a bias unless ``bias=False``) or ``"rmsnorm"``."""
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return RMSNorm(dim, eps)
    raise ValueError(f"norm: expected 'layernorm' or 'rmsnorm', got {kind!r}")
