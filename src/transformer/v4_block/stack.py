"""A stack of N transformer blocks, a drop-in for ``nn.TransformerEncoder``."""

from __future__ import annotations

import copy
import inspect

from torch import Tensor, nn

from transformer._checks import check_positive_int

BLOCK_SIGNATURE = "forward(src, src_mask, src_key_padding_mask, is_causal)"


def check_block(layer: object) -> None:
    """Raise unless ``layer`` is a module whose forward takes the block's four arguments."""
    name = type(layer).__name__
    if not isinstance(layer, nn.Module):
        raise TypeError(f"encoder_layer: expected a block ({BLOCK_SIGNATURE}), got {name}")
    try:
        inspect.signature(layer.forward).bind(None, None, None, False)
    except TypeError:
        shown = f"forward{inspect.signature(layer.forward)}"
        raise TypeError(
            f"encoder_layer: expected a block ({BLOCK_SIGNATURE}), got {name} with {shown}"
        ) from None


class TransformerEncoder(nn.Module):
    """``num_layers`` independent copies of ``encoder_layer``, applied in turn, then ``norm``.

    ``encoder_layer`` is any module with the block's signature, ``layer(src, src_mask,
    src_key_padding_mask, is_causal)``: v4's ``TransformerBlock`` in any configuration
    (v5's GPT-2 block included) or ``nn.TransformerEncoderLayer``. Parameter names match
    ``nn.TransformerEncoder`` (``layers.0.…``, ``norm.…``).

    ``enable_nested_tensor`` and ``mask_check`` are accepted with PyTorch's defaults and do
    nothing here: PyTorch uses them for its eval-mode nested-tensor fast path, which returns
    zeros at padded positions; this stack has no such path and computes padded positions
    like any other.
    """

    def __init__(
        self,
        encoder_layer: nn.Module,
        num_layers: int,
        norm: nn.Module | None = None,
        enable_nested_tensor: bool = True,
        mask_check: bool = True,
    ) -> None:
        super().__init__()
        check_block(encoder_layer)
        check_positive_int("num_layers", num_layers)
        if norm is not None and not isinstance(norm, nn.Module):
            raise TypeError(
                f"norm: expected None or an nn.Module such as nn.LayerNorm, got {norm!r}"
            )
        self.layers = nn.ModuleList(copy.deepcopy(encoder_layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check

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
            if not hasattr(layer, "forward_with_attention"):
                raise TypeError(
                    f"encoder_layer: expected a block with forward_with_attention to read "
                    f"its weights, got {type(layer).__name__}"
                )
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
