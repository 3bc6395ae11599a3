"""The transformer block: attention and a feed-forward layer, each wrapped in a residual
connection, LayerNorm and dropout. A drop-in for ``nn.TransformerEncoderLayer``.

The parameter names are PyTorch's (``self_attn``, ``linear1``, ``linear2``, ``norm1``,
``norm2``), so ``block.load_state_dict(torch_layer.state_dict())`` works both ways.
Everything that differs between blocks is an argument: post- or pre-norm, the activation,
and three dropouts (on the attention weights, inside the feed-forward layer, and on each
sublayer's output). GPT-2's block (v5) is this block configured, not a subclass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from transformer._checks import (
    check_floating,
    check_number,
    check_positive_int,
    check_probability,
    check_rank,
    check_same_dtype,
    check_size,
)
from transformer.v2_multihead import MultiHeadAttention
from transformer.v2_multihead.masks import attention_bias

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


def resolve_activation(activation: str | Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """``"relu"``, ``"gelu"`` or any callable, as ``nn.TransformerEncoderLayer`` accepts."""
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation: expected one of {', '.join(ACTIVATIONS)} or a callable, "
                f"got {activation!r}"
            )
        return ACTIVATIONS[activation]
    if not callable(activation):
        raise TypeError(f"activation: expected a string or a callable, got {activation!r}")
    return activation


def check_block_arguments(dim_feedforward: object, dropout: object, layer_norm_eps: object) -> None:
    """The checks every block (v4's, v6's decoder block) makes of PyTorch's shared arguments."""
    check_positive_int("dim_feedforward", dim_feedforward)
    check_probability("dropout", dropout)
    if check_number("layer_norm_eps", layer_norm_eps, 0.0) == 0.0:
        raise ValueError(f"layer_norm_eps: expected a number > 0, got {layer_norm_eps!r}")


class TransformerBlock(nn.Module):
    """Self-attention sublayer then position-wise feed-forward sublayer.

    Post-norm (the paper, ``norm_first=False``): ``x = norm(x + dropout(sublayer(x)))``.
    Pre-norm (GPT-2, ``norm_first=True``): ``x = x + dropout(sublayer(norm(x)))``.
    The feed-forward layer is ``linear2(dropout(activation(linear1(x))))``, applied to
    every position on its own. Arguments are those of ``nn.TransformerEncoderLayer``, plus
    ``attention_dropout`` (on the attention weights) and ``feed_forward_dropout`` (between
    the two linears), which default to ``dropout`` as in PyTorch.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        attention_dropout: float | None = None,
        feed_forward_dropout: float | None = None,
    ) -> None:
        super().__init__()
        check_block_arguments(dim_feedforward, dropout, layer_norm_eps)
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        feed_forward_dropout = dropout if feed_forward_dropout is None else feed_forward_dropout
        check_probability("attention_dropout", attention_dropout)
        check_probability("feed_forward_dropout", feed_forward_dropout)
        factory = {"device": device, "dtype": dtype}
        self.self_attn = MultiHeadAttention(
            d_model, nhead, dropout=attention_dropout, bias=bias, batch_first=batch_first, **factory
        )
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = nn.Dropout(feed_forward_dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = resolve_activation(activation)
        self.batch_first = batch_first

    def self_attention(
        self, x: Tensor, bias: Tensor | None, causal: bool, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """The attention sublayer before its residual: (dropout(attention(x)), weights).

        x (N, T, E) batch-first; ``bias`` additive (N or 1, H or 1, T, T) or None.
        """
        out, weights = self.self_attn.attend(
            x, x, x, bias, causal=causal, need_weights=need_weights
        )  # (N, T, E), (N, H, T, T) or None
        return self.dropout1(out), weights

    def feed_forward(self, x: Tensor) -> Tensor:
        """The position-wise feed-forward sublayer before its residual."""
        hidden = self.dropout(self.activation(self.linear1(x)))  # (.., dim_feedforward)
        return self.dropout2(self.linear2(hidden))  # (.., d_model)

    def _check_src(self, src: Tensor) -> None:
        layout = "(batch, seq_len, d_model)" if self.batch_first else "(seq_len, batch, d_model)"
        check_rank("src", src, (2, 3), f"{layout}, or unbatched (seq_len, d_model)")
        check_floating("src", src)
        check_same_dtype("src", src, self.linear1.weight.dtype, "the block's parameter dtype")
        check_size("src", src, -1, self.self_attn.embed_dim, "d_model")

    def forward_with_attention(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Like ``forward``, and also the attention weights (N, H, L, S) per head (or None
        with ``need_weights=False``, which takes the fused attention path)."""
        self._check_src(src)
        batched = src.dim() == 3
        x = src if not batched or self.batch_first else src.transpose(0, 1)  # (N, T, E)
        x = x if batched else x.unsqueeze(0)  # (N, T, E)
        batch, seq_len = x.shape[0], x.shape[1]
        bias = attention_bias(
            src_mask,
            src_key_padding_mask,
            batch=batch,
            num_heads=self.self_attn.num_heads,
            tgt_len=seq_len,
            src_len=seq_len,
            batched=batched,
            dtype=x.dtype,
        )  # (N or 1, H or 1, T, T) or None
        causal = is_causal and src_mask is None  # with a mask, is_causal is only a hint
        if self.norm_first:
            attended, weights = self.self_attention(self.norm1(x), bias, causal, need_weights)
            x = x + attended
            x = x + self.feed_forward(self.norm2(x))
        else:
            attended, weights = self.self_attention(x, bias, causal, need_weights)
            x = self.norm1(x + attended)
            x = self.norm2(x + self.feed_forward(x))
        x = x if batched else x.squeeze(0)  # src's layout
        return (x if not batched or self.batch_first else x.transpose(0, 1)), weights

    def self_attend(
        self, x: Tensor, *, causal: bool, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """The sequence-model layer protocol: x (N, T, E) batch-first -> the block's output."""
        return self.forward_with_attention(x, is_causal=causal, need_weights=need_weights)

    def forward(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        """src (N, S, E) with ``batch_first``, else (S, N, E), or unbatched (S, E) -> same shape.

        ``is_causal=True`` with no ``src_mask`` attends causally without building a mask;
        PyTorch needs the mask passed as well. With a ``src_mask``, ``is_causal`` is a hint.
        """
        return self.forward_with_attention(
            src, src_mask, src_key_padding_mask, is_causal, need_weights=False
        )[0]


TransformerEncoderLayer = TransformerBlock  # PyTorch's name for the same thing
