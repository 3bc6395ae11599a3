"""A stack of N transformer blocks, a drop-in for ``nn.TransformerEncoder``."""

from __future__ import annotations

import copy

from torch import Tensor, nn

from transformer._checks import check_positive_int
from transformer.v4_block.block import TransformerBlock


class TransformerEncoder(nn.Module):
    """``num_layers`` independent copies of ``encoder_layer``, applied in turn, then ``norm``.

    Parameter names match ``nn.TransformerEncoder`` (``layers.0.…``, ``norm.…``). Unlike
    PyTorch in eval mode with a padding mask, padded positions are computed like any
    other rather than returned as zeros (PyTorch's nested-tensor fast path).
    """

    def __init__(
        self, encoder_layer: TransformerBlock, num_layers: int, norm: nn.Module | None = None
    ) -> None:
        super().__init__()
        if not isinstance(encoder_layer, TransformerBlock):
            raise TypeError(
                f"encoder_layer: expected a TransformerBlock, got {type(encoder_layer).__name__}"
            )
        check_positive_int("num_layers", num_layers)
        self.layers = nn.ModuleList(copy.deepcopy(encoder_layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = norm

    def forward_with_attention(
        self,
        src: Tensor,
        mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """Like ``forward``, and each layer's attention weights (N, H, L, S)."""
        x, maps = src, []
        for layer in self.layers:
            x, weights = layer.forward_with_attention(
                x, mask, src_key_padding_mask, bool(is_causal), need_weights=True
            )
            maps.append(weights)
        return (x if self.norm is None else self.norm(x)), maps

    def forward(
        self,
        src: Tensor,
        mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool | None = None,
    ) -> Tensor:
        """src -> the same shape, through every layer (and ``norm`` if given)."""
        x = src
        for layer in self.layers:
            x = layer(x, mask, src_key_padding_mask, bool(is_causal))
        return x if self.norm is None else self.norm(x)
