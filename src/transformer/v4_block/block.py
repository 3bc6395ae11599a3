"""The transformer block: attention and a feed-forward layer, each wrapped in a residual
connection, LayerNorm and dropout. A drop-in for ``nn.TransformerEncoderLayer``.

The parameter names are PyTorch's (``self_attn``, ``linear1``, ``linear2``, ``norm1``,
``norm2``), so ``block.load_state_dict(torch_layer.state_dict())`` works both ways.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from transformer._checks import (
    check_positive_int,
    check_probability,
    check_rank,
    check_size,
)
from transformer.v1_basic_attention import causal_mask
from transformer.v2_multihead import MultiHeadAttention

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


def blocked_future(seq_len: int, device: torch.device | None = None) -> Tensor:
    """PyTorch-convention causal mask (seq_len, seq_len): True where key j > query i is hidden.

    v1's ``causal_mask`` (True = may attend), inverted.
    """
    return ~causal_mask(seq_len, device)  # (T, T)


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


class TransformerBlock(nn.Module):
    """Self-attention sublayer then position-wise feed-forward sublayer.

    Post-norm (the paper, ``norm_first=False``): ``x = norm(x + dropout(sublayer(x)))``.
    Pre-norm (GPT-2, ``norm_first=True``): ``x = x + dropout(sublayer(norm(x)))``.
    The feed-forward layer is ``linear2(dropout(activation(linear1(x))))``, applied to
    every position on its own. Arguments are those of ``nn.TransformerEncoderLayer``.
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
    ) -> None:
        super().__init__()
        check_positive_int("dim_feedforward", dim_feedforward)
        check_probability("dropout", dropout)
        factory = {"device": device, "dtype": dtype}
        self.self_attn = MultiHeadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **factory
        )
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = resolve_activation(activation)
        self.batch_first = batch_first

    def _attention_mask(
        self, src: Tensor, src_mask: Tensor | None, is_causal: bool
    ) -> Tensor | None:
        """``src_mask`` as given; with ``is_causal=True`` and no mask, the causal one."""
        if src_mask is not None or not is_causal:
            return src_mask
        seq_dim = 1 if src.dim() == 3 and self.batch_first else 0
        return blocked_future(src.shape[seq_dim], src.device)  # (T, T)

    def self_attention(
        self,
        x: Tensor,
        attn_mask: Tensor | None,
        key_padding_mask: Tensor | None,
        is_causal: bool,
        need_weights: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """The attention sublayer before its residual: (dropout(attention(x)), weights)."""
        out, weights = self.self_attn(
            x,
            x,
            x,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            average_attn_weights=False,
            is_causal=is_causal and attn_mask is not None,
        )  # x's shape, (N, H, L, S) or None
        return self.dropout1(out), weights

    def feed_forward(self, x: Tensor) -> Tensor:
        """The position-wise feed-forward sublayer before its residual."""
        hidden = self.dropout(self.activation(self.linear1(x)))  # (.., dim_feedforward)
        return self.dropout2(self.linear2(hidden))  # (.., d_model)

    def forward_with_attention(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Like ``forward``, and also the attention weights (N, H, L, S) per head."""
        layout = "(batch, seq_len, d_model)" if self.batch_first else "(seq_len, batch, d_model)"
        check_rank("src", src, (2, 3), f"{layout}, or unbatched (seq_len, d_model)")
        check_size("src", src, -1, self.self_attn.embed_dim, "d_model")
        mask = self._attention_mask(src, src_mask, is_causal)  # (L, S), (N·H, L, S) or None
        x = src
        if self.norm_first:
            attended, weights = self.self_attention(
                self.norm1(x), mask, src_key_padding_mask, is_causal, need_weights
            )
            x = x + attended
            x = x + self.feed_forward(self.norm2(x))
        else:
            attended, weights = self.self_attention(
                x, mask, src_key_padding_mask, is_causal, need_weights
            )
            x = self.norm1(x + attended)
            x = self.norm2(x + self.feed_forward(x))
        return x, weights  # src's shape

    def forward(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        """src (N, S, E) with ``batch_first``, else (S, N, E), or unbatched (S, E) -> same shape.

        ``is_causal=True`` with no ``src_mask`` builds the causal mask; PyTorch needs
        the mask passed as well. With a ``src_mask``, ``is_causal`` is only a hint.
        """
        return self.forward_with_attention(
            src, src_mask, src_key_padding_mask, is_causal, need_weights=False
        )[0]


TransformerEncoderLayer = TransformerBlock  # PyTorch's name for the same thing
