"""The decoder block: masked self-attention, then cross-attention over the encoder's output,
then the feed-forward sublayer. A drop-in for ``nn.TransformerDecoderLayer``.

Cross-attention is this stage's one new idea: the queries come from the target being
written, the keys and values from the *memory*, the encoder's output for the source. Row
``i`` of its weights says which source positions target position ``i`` read.

Parameter names are PyTorch's (``self_attn``, ``multihead_attn``, ``linear1``, ``linear2``,
``norm1``-``norm3``), so state dicts load both ways. Attention is v2's, the feed-forward
sublayer and activations v4's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from transformer._checks import (
    check_floating,
    check_rank,
    check_same_dtype,
    check_size,
)
from transformer.v2_multihead import MultiHeadAttention
from transformer.v2_multihead.masks import attention_bias
from transformer.v4_block import check_block_arguments, resolve_activation


class TransformerDecoderLayer(nn.Module):
    """Self-attention (causal via ``tgt_mask``), cross-attention, feed-forward; each sublayer
    wrapped in a residual connection, LayerNorm and dropout.

    Post-norm (the paper, ``norm_first=False``): ``x = norm(x + dropout(sublayer(x)))``.
    Pre-norm (``norm_first=True``): ``x = x + dropout(sublayer(norm(x)))``. Arguments are
    those of ``nn.TransformerDecoderLayer``.
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
        check_block_arguments(dim_feedforward, dropout, layer_norm_eps)  # v4's
        factory = {"device": device, "dtype": dtype}
        attention = {"dropout": dropout, "bias": bias, "batch_first": batch_first, **factory}
        self.self_attn = MultiHeadAttention(d_model, nhead, **attention)
        self.multihead_attn = MultiHeadAttention(d_model, nhead, **attention)  # NEW: cross
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = norm_first
        norm = {"eps": layer_norm_eps, "bias": bias, **factory}
        self.norm1 = nn.LayerNorm(d_model, **norm)
        self.norm2 = nn.LayerNorm(d_model, **norm)
        self.norm3 = nn.LayerNorm(d_model, **norm)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.activation = resolve_activation(activation)
        self.batch_first = batch_first

    def feed_forward(self, x: Tensor) -> Tensor:
        """The position-wise feed-forward sublayer before its residual."""
        hidden = self.dropout(self.activation(self.linear1(x)))  # (.., dim_feedforward)
        return self.dropout3(self.linear2(hidden))  # (.., d_model)

    def _check(self, tgt: Tensor, memory: Tensor) -> bool:
        """Validate both inputs; return whether they are batched."""
        layout = "(batch, seq_len, d_model)" if self.batch_first else "(seq_len, batch, d_model)"
        check_rank("tgt", tgt, (2, 3), f"{layout}, or unbatched (seq_len, d_model)")
        check_rank("memory", memory, (tgt.dim(),), f"{layout} with the rank of tgt ({tgt.dim()})")
        for name, tensor in (("tgt", tgt), ("memory", memory)):
            check_floating(name, tensor)
            check_same_dtype(name, tensor, self.linear1.weight.dtype, "the layer's parameter dtype")
            check_size(name, tensor, -1, self.self_attn.embed_dim, "d_model")
        batched = tgt.dim() == 3
        if batched:
            batch_dim = 0 if self.batch_first else 1
            check_size("memory", memory, batch_dim, tgt.shape[batch_dim], "batch, as in tgt")
        return batched

    def forward_with_attention(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
        need_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Like ``forward``, and the self- and cross-attention weights per head,
        (N, H, T, T) and (N, H, T, S), or None with ``need_weights=False``."""
        batched = self._check(tgt, memory)
        x, mem = tgt, memory
        if not batched:
            x, mem = x.unsqueeze(0), mem.unsqueeze(0)  # (1, T, E), (1, S, E)
        elif not self.batch_first:
            x, mem = x.transpose(0, 1), mem.transpose(0, 1)  # (N, T, E), (N, S, E)
        batch, tgt_len, src_len = x.shape[0], x.shape[1], mem.shape[1]
        sizes = {"batch": batch, "num_heads": self.self_attn.num_heads, "batched": batched}
        self_bias = attention_bias(
            tgt_mask, tgt_key_padding_mask, tgt_len=tgt_len, src_len=tgt_len,
            dtype=x.dtype, **sizes,
        )  # (N or 1, H or 1, T, T) or None  # fmt: skip
        cross_bias = attention_bias(
            memory_mask, memory_key_padding_mask, tgt_len=tgt_len, src_len=src_len,
            dtype=x.dtype, **sizes,
        )  # (N or 1, H or 1, T, S) or None  # fmt: skip
        if memory_is_causal and memory_mask is None:
            raise ValueError(
                "memory_is_causal: as in nn.TransformerDecoderLayer, memory_is_causal=True is "
                "only a hint that memory_mask is causal; expected memory_mask to be given, "
                "got None"
            )
        # with a mask, an is_causal flag is only a hint, as in PyTorch; tgt_is_causal alone
        # attends causally without building a mask
        self_causal = tgt_is_causal and tgt_mask is None
        attend = {"need_weights": need_weights}
        if self.norm_first:
            h = self.norm1(x)  # (N, T, E)
            out, self_weights = self.self_attn.attend(
                h, h, h, self_bias, causal=self_causal, **attend
            )
            x = x + self.dropout1(out)
            h = self.norm2(x)  # (N, T, E)
            out, cross_weights = self.multihead_attn.attend(
                h, mem, mem, cross_bias, **attend
            )  # (N, T, E): queries from the target, keys and values from the memory
            x = x + self.dropout2(out)
            x = x + self.feed_forward(self.norm3(x))
        else:
            out, self_weights = self.self_attn.attend(
                x, x, x, self_bias, causal=self_causal, **attend
            )
            x = self.norm1(x + self.dropout1(out))
            out, cross_weights = self.multihead_attn.attend(
                x, mem, mem, cross_bias, **attend
            )  # (N, T, E): queries from the target, keys and values from the memory
            x = self.norm2(x + self.dropout2(out))
            x = self.norm3(x + self.feed_forward(x))
        if not batched:
            x = x.squeeze(0)  # (T, E)
        elif not self.batch_first:
            x = x.transpose(0, 1)  # (T, N, E)
        return x, self_weights, cross_weights

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> Tensor:
        """tgt (N, T, E) with ``batch_first``, else (T, N, E), or unbatched (T, E); memory
        likewise with S positions -> the shape of tgt.

        Masks follow ``nn.MultiheadAttention`` (True or -inf = blocked). ``tgt_is_causal=True``
        with no ``tgt_mask`` attends causally without building a mask; PyTorch needs the mask
        passed as well. With a mask, the flag is a hint and the mask is what is applied.
        """
        return self.forward_with_attention(
            tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask,
            tgt_is_causal, memory_is_causal, need_weights=False,
        )[0]  # fmt: skip
