"""The two feed-forward sublayers: GPT-2's GELU MLP and Llama's SwiGLU.

    gelu:   linear2(gelu_tanh(linear1(x)))               two matrices, width 4·d
    swiglu: down_proj(silu(gate_proj(x)) · up_proj(x))   three matrices, width ≈ 8·d/3

SwiGLU is a *gated* linear unit: one projection (``up_proj``) carries the values, another
(``gate_proj``), through SiLU (x·σ(x)), decides how much of each passes. Its width follows
``config.swiglu_hidden_dim``, so both hold the same number of weights.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from transformer.v5_gpt import gelu_tanh


class GELUFeedForward(nn.Module):
    """v5's MLP as a module: x (..., d) -> linear2(gelu_tanh(linear1(x))) (..., d).

    Parameter names are v4's block's (``linear1``, ``linear2``)."""

    def __init__(self, dim: int, hidden: int, bias: bool = True) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden, bias=bias)
        self.linear2 = nn.Linear(hidden, dim, bias=bias)

    @property
    def output(self) -> nn.Linear:
        """The projection back into the residual stream."""
        return self.linear2

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(gelu_tanh(self.linear1(x)))  # (..., hidden) -> (..., d)


class SwiGLU(nn.Module):
    """x (..., d) -> down_proj(silu(gate_proj(x)) * up_proj(x)) (..., d); Llama's names."""

    def __init__(self, dim: int, hidden: int, bias: bool = False) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=bias)
        self.up_proj = nn.Linear(dim, hidden, bias=bias)
        self.down_proj = nn.Linear(hidden, dim, bias=bias)

    @property
    def output(self) -> nn.Linear:
        """The projection back into the residual stream."""
        return self.down_proj

    def forward(self, x: Tensor) -> Tensor:
        gated = F.silu(self.gate_proj(x)) * self.up_proj(x)  # (..., hidden)
        return self.down_proj(gated)  # (..., d)


def make_feed_forward(kind: str, dim: int, hidden: int, bias: bool) -> nn.Module:
    """``"gelu"`` or ``"swiglu"``."""
    if kind == "gelu":
        return GELUFeedForward(dim, hidden, bias)
    if kind == "swiglu":
        return SwiGLU(dim, hidden, bias)
    raise ValueError(f"mlp: expected 'gelu' or 'swiglu', got {kind!r}")
