"""nn.MultiheadAttention's masks, turned into one additive bias over the scores.

Convention (PyTorch's, the opposite of v1's 1 = attend): in a bool ``attn_mask`` or
``key_padding_mask`` True means *blocked*; a floating mask is *added* to the scores (0 =
attend, -inf = blocked).
"""

from __future__ import annotations

import torch
from torch import Tensor

from transformer._checks import check_shape, check_tensor, named_shape, shape_str
from transformer.v1_basic_attention import blocked_to_bias


def to_additive(name: str, mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Bool (True = blocked) -> 0/-inf; a floating mask is kept as the bias it already is."""
    check_tensor(name, mask)
    if mask.dtype == torch.bool:
        return blocked_to_bias(mask, dtype)
    if mask.is_floating_point():
        return mask.to(dtype)
    raise TypeError(
        f"{name}: expected dtype torch.bool (True = blocked) or a floating-point additive "
        f"mask, got {mask.dtype}"
    )


def attention_bias(
    attn_mask: Tensor | None,
    key_padding_mask: Tensor | None,
    *,
    batch: int,
    num_heads: int,
    tgt_len: int,
    src_len: int,
    batched: bool,
    dtype: torch.dtype,
) -> Tensor | None:
    """Merge both masks into an additive bias broadcastable to (batch, num_heads, L, S)."""
    bias = None
    if attn_mask is not None:
        bias = to_additive("attn_mask", attn_mask, dtype)
        if attn_mask.dim() == 2:
            check_shape("attn_mask", attn_mask, tgt_len=tgt_len, src_len=src_len)
            bias = bias.view(1, 1, tgt_len, src_len)  # (1, 1, L, S)
        elif attn_mask.dim() == 3:
            first = "batch*num_heads" if batched else "num_heads"
            expected = {first: batch * num_heads, "tgt_len": tgt_len, "src_len": src_len}
            if tuple(attn_mask.shape) != tuple(expected.values()):
                raise ValueError(
                    f"attn_mask: expected shape {named_shape(**expected)}, "
                    f"got {shape_str(attn_mask.shape)}"
                )
            bias = bias.view(batch, num_heads, tgt_len, src_len)  # (N, H, L, S)
        else:
            first = "batch*num_heads" if batched else "num_heads"
            raise ValueError(
                f"attn_mask: expected a 2-D (tgt_len, src_len) or 3-D ({first}, tgt_len, "
                f"src_len) tensor, got {attn_mask.dim()}-D with shape {shape_str(attn_mask.shape)}"
            )
    if key_padding_mask is not None:
        padding = to_additive("key_padding_mask", key_padding_mask, dtype)
        if batched:
            check_shape("key_padding_mask", key_padding_mask, batch=batch, src_len=src_len)
        else:
            check_shape("key_padding_mask", key_padding_mask, src_len=src_len)
        padding = padding.view(batch, 1, 1, src_len)  # (N, 1, 1, S)
        bias = padding if bias is None else bias + padding  # (N, H or 1, L, S)
    return bias
