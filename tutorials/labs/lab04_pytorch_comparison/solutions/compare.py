"""Lab 04, solved: the mask convention and the weight layout of nn.MultiheadAttention."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def to_torch_mask(attend_mask: Tensor) -> Tensor:
    """v1's 1 = attend -> PyTorch's True = blocked."""
    return attend_mask == 0  # (L, S) bool


def load_from_torch(ours: nn.Module, theirs: nn.MultiheadAttention) -> None:
    """Copy the stacked q, k, v rows of in_proj and the out_proj into w_q, w_k, w_v, w_o."""
    weights = theirs.in_proj_weight.chunk(3)  # 3 x (E, E): q, k, v
    biases = theirs.in_proj_bias.chunk(3)  # 3 x (E,)
    with torch.no_grad():
        for layer, weight, bias in zip(
            (ours.w_q, ours.w_k, ours.w_v), weights, biases, strict=True
        ):
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
        ours.w_o.weight.copy_(theirs.out_proj.weight)
        ours.w_o.bias.copy_(theirs.out_proj.bias)
