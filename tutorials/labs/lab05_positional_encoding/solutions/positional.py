"""Lab 05, solved: the sinusoidal table and the module that adds it."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def sinusoidal_encoding(max_len: int, d_model: int) -> Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(the same angle)."""
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # (max_len, 1)
    rate = 10000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)  # (⌈d/2⌉,)
    angle = position / rate  # (max_len, ⌈d/2⌉)
    table = torch.zeros(max_len, d_model)  # (max_len, d_model)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])  # odd d_model: one cosine fewer
    return table


class SinusoidalPositionalEncoding(nn.Module):
    """x (B, T, d_model) -> x + PE[:T]; the table is a buffer, not a parameter."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.register_buffer("pe", sinusoidal_encoding(max_len, d_model))

    def forward(self, x: Tensor) -> Tensor:
        seq_len = x.shape[1]
        if seq_len > self.max_len:
            raise ValueError(f"seq_len {seq_len} is longer than max_len {self.max_len}")
        return x + self.pe[:seq_len].to(x.dtype)  # (B, T, d_model)
