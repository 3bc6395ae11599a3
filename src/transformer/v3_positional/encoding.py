"""Positional information: the paper's sinusoidal encoding and learned position embeddings.

Attention is permutation-equivariant: shuffle the tokens and the outputs shuffle with
them. Adding a vector that depends on the position breaks that symmetry, so the model
can tell "a then b" from "b then a".
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from transformer._checks import (
    check_floating,
    check_positive_int,
    check_rank,
    check_seq_len,
    check_tensor,
    shape_str,
)

POSITIONAL_KINDS = ("sinusoidal", "learned")


def sinusoidal_encoding(max_len: int, d_model: int) -> Tensor:
    """The table PE (max_len, d_model) of "Attention Is All You Need", section 3.5.

    PE(pos, 2i) = sin(pos / 10000^(2i/d_model)) and PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)).
    Each pair of columns is a clock that turns at its own speed, from one turn every 2π
    positions (i = 0) to one every 10000·2π positions. An odd d_model drops the last cosine.
    """
    check_positive_int("max_len", max_len)
    check_positive_int("d_model", d_model)
    position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)  # (max_len, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(d/2),)
    angle = position / 10000.0 ** (two_i / d_model)  # (max_len, ceil(d/2))
    table = torch.zeros(max_len, d_model, dtype=torch.float64)  # (max_len, d_model)
    table[:, 0::2] = torch.sin(angle)  # even columns
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])  # odd columns
    return table.to(torch.get_default_dtype())  # computed in float64, stored in the default dtype


class _Positions(nn.Module):
    """Adds a (max_len, d_model) table of position vectors to x (batch, seq, d_model)."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.max_len = check_positive_int("max_len", max_len)
        self.d_model = check_positive_int("d_model", d_model)

    def table(self) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        check_tensor("x", x)
        check_rank("x", x, (3,), "(batch, seq_len, d_model)")
        check_floating("x", x)  # integer token ids belong in the embedding first
        seq_len = x.shape[1]
        if x.shape[2] != self.d_model:
            raise ValueError(
                f"x: expected last dimension d_model={self.d_model}, got shape {shape_str(x.shape)}"
            )
        check_seq_len(
            "x",
            seq_len,
            self.max_len,
            "max_len",
            "build it with a larger max_len to use longer sequences",
        )
        return x + self.table()[:seq_len].to(x.dtype)  # (B, T, d_model)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"


class SinusoidalPositionalEncoding(_Positions):
    """The fixed sinusoidal table; it has no parameters and is not saved in the state dict."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__(max_len, d_model)
        self.register_buffer("pe", sinusoidal_encoding(max_len, d_model), persistent=False)

    def table(self) -> Tensor:
        return self.pe  # (max_len, d_model)


class LearnedPositionalEmbedding(_Positions):
    """One trained vector per position, as in BERT and GPT-2; initialised N(0, 0.02²) like GPT-2."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__(max_len, d_model)
        self.weight = nn.Parameter(torch.empty(max_len, d_model))  # (max_len, d_model)
        nn.init.normal_(self.weight, std=0.02)

    def table(self) -> Tensor:
        return self.weight  # (max_len, d_model)


def make_positions(kind: str, max_len: int, d_model: int) -> _Positions:
    """``"sinusoidal"`` or ``"learned"`` position vectors."""
    if kind == "sinusoidal":
        return SinusoidalPositionalEncoding(max_len, d_model)
    if kind == "learned":
        return LearnedPositionalEmbedding(max_len, d_model)
    raise ValueError(f"positional: expected one of {', '.join(POSITIONAL_KINDS)}, got {kind!r}")
