"""Lab 05: the sinusoidal positional encoding. Fill in sinusoidal_encoding and
SinusoidalPositionalEncoding.

Check your work with: poetry run pytest tests/ (in tutorials/labs/lab05_positional_encoding)
"""

from __future__ import annotations

import math  # noqa: F401  (math.log, if you build the rates with exp)

import torch  # noqa: F401
from torch import Tensor, nn


def sinusoidal_encoding(max_len: int, d_model: int) -> Tensor:
    """The table PE (max_len, d_model) of "Attention Is All You Need", section 3.5.

    PE(pos, 2i)   = sin(pos / 10000^(2i/d_model))
    PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))
    pos = 0, 1, ..., max_len - 1. Column 2i and column 2i+1 share one angle. When d_model is
    odd, the last column is a sine with no cosine after it. Return the default dtype (float32).
    """
    # 1. positions:  0, 1, ..., max_len - 1                       # (max_len, 1)
    # 2. rates:      10000^(2i/d_model) for 2i = 0, 2, 4, ...      # (ceil(d_model / 2),)
    # 3. angles:     position / rate                               # (max_len, ceil(d_model / 2))
    # 4. table:      sin of the angles in the even columns, cos in the odd ones
    raise NotImplementedError("lab05: implement sinusoidal_encoding() in positional.py")


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the sinusoidal table to token embeddings x (batch, seq_len, d_model).

    The table is fixed, not trained: keep it with self.register_buffer("pe", table).
    forward(x) returns x + pe[:seq_len], of x's shape and dtype, and raises a ValueError that
    names seq_len and max_len when seq_len > max_len.
    """

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.d_model = d_model
        raise NotImplementedError("lab05: implement __init__(): register the table as a buffer")

    def forward(self, x: Tensor) -> Tensor:
        # 1. seq_len = x.shape[1]; if it is longer than max_len, raise a ValueError
        # 2. add the first seq_len rows of the table                    # (B, T, d_model)
        raise NotImplementedError("lab05: implement SinusoidalPositionalEncoding.forward()")
