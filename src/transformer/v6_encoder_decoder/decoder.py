"""A stack of N decoder blocks, a drop-in for ``nn.TransformerDecoder``."""

from __future__ import annotations

import copy
import inspect

from torch import Tensor, nn

from transformer._checks import check_positive_int

DECODER_LAYER_SIGNATURE = (
    "forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, "
    "memory_key_padding_mask, tgt_is_causal, memory_is_causal)"
)


def check_decoder_layer(layer: object) -> None:
    """Raise unless ``layer`` is a module whose forward takes the decoder block's arguments."""
    name = type(layer).__name__
    expected = f"a decoder block ({DECODER_LAYER_SIGNATURE})"
    if not isinstance(layer, nn.Module):
        raise TypeError(f"decoder_layer: expected {expected}, got {name}")
    try:
        inspect.signature(layer.forward).bind(None, None, None, None, None, None, False, False)
    except TypeError:
        shown = f"forward{inspect.signature(layer.forward)}"
        raise TypeError(f"decoder_layer: expected {expected}, got {name} with {shown}") from None


class TransformerDecoder(nn.Module):
    """``num_layers`` independent copies of ``decoder_layer``, applied in turn, then ``norm``.

    ``decoder_layer`` is this stage's ``TransformerDecoderLayer`` or PyTorch's. Parameter
    names match ``nn.TransformerDecoder`` (``layers.0.…``, ``norm.…``). Every layer reads the
    same ``memory``.
    """

    def __init__(
        self, decoder_layer: nn.Module, num_layers: int, norm: nn.Module | None = None
    ) -> None:
        super().__init__()
        check_decoder_layer(decoder_layer)
        check_positive_int("num_layers", num_layers)
        if norm is not None and not isinstance(norm, nn.Module):
            raise TypeError(
                f"norm: expected None or an nn.Module such as nn.LayerNorm, got {norm!r}"
            )
        self.layers = nn.ModuleList(copy.deepcopy(decoder_layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = norm

    def forward_with_attention(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Like ``forward``, and each layer's self- and cross-attention weights per head,
        (N, H, T, T) and (N, H, T, S)."""
        x, self_maps, cross_maps = tgt, [], []
        for layer in self.layers:
            if not hasattr(layer, "forward_with_attention"):
                raise TypeError(
                    f"decoder_layer: expected a block with forward_with_attention to read "
                    f"its weights, got {type(layer).__name__}"
                )
            x, self_weights, cross_weights = layer.forward_with_attention(
                x, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                memory_key_padding_mask, bool(tgt_is_causal), memory_is_causal,
            )  # fmt: skip
            self_maps.append(self_weights)
            cross_maps.append(cross_weights)
        return (x if self.norm is None else self.norm(x)), self_maps, cross_maps

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> Tensor:
        """tgt -> the same shape, through every layer (and ``norm`` if given)."""
        x = tgt
        for layer in self.layers:
            x = layer(
                x, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask,
                bool(tgt_is_causal), memory_is_causal,
            )  # fmt: skip
        return x if self.norm is None else self.norm(x)
