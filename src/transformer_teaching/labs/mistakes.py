"""The common mistakes, computed on purpose, so that a check can recognise them.

``attention_variant`` is v1's attention with one thing done wrong; ``multihead_variant`` is
v1's multi-head attention with one step done wrong; ``sinusoidal_variant`` is v3's sinusoidal
table and ``block_variant`` v4's transformer block, each with one thing done wrong;
``frequencies_variant``, ``rotate_variant``, ``rope_variant`` and ``rmsnorm_variant`` are
v7's rotary embedding and RMSNorm, written out in float64, each with one thing done wrong;
``decoder_variant`` is v6's decoder block with one thing done wrong; ``online_variant`` is
attention over key blocks with an online softmax (v8's algorithm), in float64, with one
thing done wrong.
With no keyword they give the correct result. Fully blocked rows get zero weights (v1's
``softmax_over_keys``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from transformer.v1_basic_attention import (
    MultiHeadAttention,
    merge_heads,
    scaled_scores,
    softmax_over_keys,
    split_heads,
)
from transformer.v4_block import TransformerBlock


def attention_variant(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None = None,
    *,
    divide_by: float | None = None,
    softmax_dim: int = -1,
    mask_mode: str = "correct",
) -> tuple[Tensor, Tensor]:
    """v1's attention, optionally wrong in one way; returns (output (..., L, d_v), weights).

    divide_by: divide QKᵀ by this instead of √d_k (1.0 = no scaling).
    softmax_dim: -2 normalises over the queries instead of the keys.
    mask_mode: "inverted" blocks where mask != 0, "ignored" skips the mask, "zero_fill" sets
    blocked scores to 0 instead of -inf, "after_softmax" zeroes blocked weights afterwards.
    """
    if divide_by is None:
        scores = scaled_scores(query, key)  # (..., L, S)
    else:
        scores = query @ key.transpose(-2, -1) / divide_by  # (..., L, S)
    if mask is not None and mask_mode in ("correct", "inverted", "zero_fill"):
        blocked = (mask != 0) if mask_mode == "inverted" else (mask == 0)  # (..., L, S)
        fill = 0.0 if mask_mode == "zero_fill" else float("-inf")
        scores = scores.masked_fill(blocked, fill)  # (..., L, S)
    if softmax_dim == -1:
        weights = softmax_over_keys(scores)  # (..., L, S)
    else:  # over the queries; a fully blocked key column gets zeros
        weights = softmax_over_keys(scores.transpose(-2, -1)).transpose(-2, -1)  # (..., L, S)
    if mask is not None and mask_mode == "after_softmax":
        weights = weights * (mask != 0)  # (..., L, S)
    return weights @ value, weights  # (..., L, d_v), (..., L, S)


def split_without_transpose(x: Tensor, num_heads: int) -> Tensor:
    """Mistake: (B, T, E) reshaped straight to (B, H, T, D), mixing positions into heads."""
    batch, seq, embed = x.shape
    return x.reshape(batch, num_heads, seq, embed // num_heads)  # (B, H, T, D)


def split_interleaved(x: Tensor, num_heads: int) -> Tensor:
    """Mistake: head h takes every H-th feature instead of one contiguous block."""
    batch, seq, embed = x.shape
    return x.reshape(batch, seq, embed // num_heads, num_heads).permute(0, 3, 1, 2)  # (B,H,T,D)


def merge_without_transpose(x: Tensor) -> Tensor:
    """Mistake: (B, H, T, D) reshaped straight to (B, T, H*D), mixing heads into positions."""
    batch, heads, seq, head_dim = x.shape
    return x.reshape(batch, seq, heads * head_dim)  # (B, T, E)


def merge_interleaved(x: Tensor) -> Tensor:
    """Mistake: features ordered (D, H) instead of (H, D) when merging."""
    batch, heads, seq, head_dim = x.shape
    return x.permute(0, 2, 3, 1).reshape(batch, seq, heads * head_dim)  # (B, T, E)


def multihead_variant(
    module: MultiHeadAttention,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None = None,
    *,
    split: Callable[[Tensor, int], Tensor] = split_heads,
    merge: Callable[[Tensor], Tensor] = merge_heads,
    divide_by: float | None = None,
    mask_mode: str = "correct",
    swap_query_key: bool = False,
    project_out: bool = True,
) -> tuple[Tensor, Tensor]:
    """v1's multi-head attention with ``module``'s weights, optionally wrong in one way.

    Returns output (B, L, d_model) and weights (B, H, L, S).
    """
    w_q, w_k = (module.w_k, module.w_q) if swap_query_key else (module.w_q, module.w_k)
    heads = module.num_heads
    q = split(w_q(query), heads)  # (B, H, L, D)
    k = split(w_k(key), heads)  # (B, H, S, D)
    v = split(module.w_v(value), heads)  # (B, H, S, D)
    attended, weights = attention_variant(
        q, k, v, mask, divide_by=divide_by, mask_mode=mask_mode
    )  # (B, H, L, D), (B, H, L, S)
    merged = merge(attended)  # (B, L, d_model)
    return (module.w_o(merged) if project_out else merged), weights


def sinusoidal_variant(
    max_len: int,
    d_model: int,
    *,
    base: float = 10000.0,
    exponent: str = "2i/d",
    divide: bool = True,
    sin_on_even: bool = True,
    interleave: bool = True,
    first_position: int = 0,
) -> Tensor:
    """v3's table PE (max_len, d_model) in float64, optionally wrong in one way.

    Column j belongs to pair i = j // 2 and turns at the rate base^-(2i/d_model).
    exponent: "i/d" uses the pair index i, "j/d" the column index j, "2i" forgets the /d_model.
    divide=False multiplies the position by base^(2i/d) instead of dividing.
    sin_on_even=False puts the cosines on the even columns. interleave=False puts all the sines
    first and then all the cosines. first_position=1 numbers the positions from 1.
    """
    position = torch.arange(max_len, dtype=torch.float64) + first_position  # (max_len,)
    column = torch.arange(d_model)  # (d,)
    is_sin = (column % 2 == 0) == sin_on_even  # (d,)
    pair = column // 2  # (d,)
    if not interleave:  # sines in columns [0, ceil(d/2)), then the cosines
        sines = (d_model + 1) // 2
        is_sin = column < sines
        pair = torch.where(is_sin, column, column - sines)  # (d,)
    power = {
        "2i/d": 2 * pair / d_model,
        "i/d": pair / d_model,
        "j/d": column / d_model,
        "2i": 2 * pair,
    }[exponent].double()  # (d,)
    rate = base**power if divide else base**-power  # (d,)
    angle = position.unsqueeze(1) / rate  # (max_len, d)
    return torch.where(is_sin, angle.sin(), angle.cos())  # (max_len, d)


def feed_forward_variant(
    block: TransformerBlock,
    x: Tensor,
    *,
    activation: str | None = None,
    activation_after_linear2: bool = False,
) -> Tensor:
    """``block``'s feed-forward sublayer in eval mode, optionally wrong in one way.

    activation: "relu", "gelu" or "none" instead of the block's own.
    activation_after_linear2: linear2 first, then the activation.
    """
    act = {"relu": torch.relu, "gelu": nn.functional.gelu, "none": nn.Identity()}.get(
        activation or "", block.activation
    )
    if activation_after_linear2:
        return act(block.linear2(block.linear1(x)))  # (.., d_model)
    return block.linear2(act(block.linear1(x)))  # (.., d_model)


def block_variant(
    block: TransformerBlock,
    src: Tensor,
    src_mask: Tensor | None = None,
    src_key_padding_mask: Tensor | None = None,
    *,
    norm_first: bool | None = None,
    no_residual: tuple[str, ...] = (),
    second_norm: str = "norm2",
    residual_after_norm: bool = False,
    residual_from_norm: bool = False,
    use_masks: bool = True,
    swap_layout: bool = False,
    **feed_forward: object,
) -> Tensor:
    """v4's block in eval mode with ``block``'s weights, optionally wrong in one way.

    norm_first: the other arrangement (post-norm for pre-norm, or the reverse).
    no_residual: the sublayers ("attention", "feed_forward") whose input is not added back.
    second_norm: "norm1" or "none" for the feed-forward sublayer's LayerNorm.
    residual_after_norm (post-norm): x + norm(sublayer(x)). residual_from_norm (pre-norm):
    norm(x) + sublayer(norm(x)). use_masks=False ignores both masks. swap_layout: self_attn
    reads (batch, seq) as (seq, batch). Other keywords go to ``feed_forward_variant``.
    """
    pre_norm = block.norm_first if norm_first is None else norm_first
    mask = src_mask if use_masks else None
    padding = src_key_padding_mask if use_masks else None

    def attend(x: Tensor) -> Tensor:
        x = x.transpose(0, 1) if swap_layout else x  # the other (seq, batch) layout
        out = block.self_attn(
            x, x, x, attn_mask=mask, key_padding_mask=padding, need_weights=False
        )[0]
        return out.transpose(0, 1) if swap_layout else out  # src's shape

    norm2 = {"norm2": block.norm2, "norm1": block.norm1, "none": nn.Identity()}[second_norm]
    x = src  # src's shape
    for name, sublayer, norm in (
        ("attention", attend, block.norm1),
        ("feed_forward", lambda h: feed_forward_variant(block, h, **feed_forward), norm2),
    ):
        keep = 0.0 if name in no_residual else 1.0
        if pre_norm:
            normed = norm(x)
            x = (normed if residual_from_norm else x) * keep + sublayer(normed)
        elif residual_after_norm:
            x = x * keep + norm(sublayer(x))
        else:
            x = norm(x * keep + sublayer(x))
    return x  # src's shape


def frequencies_variant(
    head_dim: int, theta: float = 10000.0, *, exponent: str = "-2i/D"
) -> Tensor:
    """v7's RoPE frequencies θᵢ (head_dim // 2,) in float64, optionally wrong in one way.

    exponent: "-i/D" uses the pair index i where θ^(-2i/D) has 2i, "+2i/D" grows instead of
    shrinking (θ^(2i/D)), "-2i" forgets the /head_dim.
    """
    i = torch.arange(head_dim // 2, dtype=torch.float64)  # (D/2,) the pair index
    power = {
        "-2i/D": -2 * i / head_dim,
        "-i/D": -i / head_dim,
        "+2i/D": 2 * i / head_dim,
        "-2i": -2 * i,
    }[exponent]  # (D/2,)
    return theta**power  # (D/2,)


def rotate_variant(x: Tensor, *, pairing: str = "half-split", sign: int = 1) -> Tensor:
    """v7's ``rotate_half``, x (..., D) -> (..., D), optionally wrong in one way.

    pairing="interleaved" turns the pairs (2i, 2i+1) instead of (i, i + D/2). sign=-1 turns
    the other way, (x₁, x₂) -> (x₂, -x₁); sign=0 forgets the minus, (x₁, x₂) -> (x₂, x₁).
    """
    if pairing == "interleaved":
        first, second = x[..., 0::2], x[..., 1::2]  # (..., D/2) each: the pairs' two features
    else:
        first, second = x.chunk(2, dim=-1)  # (..., D/2) each: the two halves
    new_first, new_second = {1: (-second, first), -1: (second, -first), 0: (second, first)}[sign]
    if pairing == "interleaved":
        return torch.stack([new_first, new_second], dim=-1).flatten(-2)  # (..., D)
    return torch.cat([new_first, new_second], dim=-1)  # (..., D)


def rope_variant(
    x: Tensor,
    theta: float = 10000.0,
    *,
    pairing: str = "half-split",
    table: str | None = None,
    first_position: int = 0,
    exponent: str = "-2i/D",
    sign: int = 1,
) -> Tensor:
    """x (..., T, D) rotated by RoPE at positions 0..T-1 (computed in float64, returned in
    x's dtype), optionally wrong in one way.

    pairing: which features ``rotate_variant`` turns together. table: the layout of the
    angles, "half-split" (angle i at features i and i + D/2) or "interleaved" (at 2i and
    2i+1); by default the pairing's. first_position=1 numbers the positions from 1.
    exponent and sign go to ``frequencies_variant`` and ``rotate_variant``.
    """
    seq_len, head_dim = x.shape[-2:]
    freqs = frequencies_variant(head_dim, theta, exponent=exponent)  # (D/2,)
    positions = torch.arange(seq_len, dtype=torch.float64) + first_position  # (T,)
    angles = positions[:, None] * freqs[None, :]  # (T, D/2)
    if (table or pairing) == "interleaved":
        angles = angles.repeat_interleave(2, dim=-1)  # (T, D): θ₀ θ₀ θ₁ θ₁ ...
    else:
        angles = torch.cat([angles, angles], dim=-1)  # (T, D): θ₀ θ₁ ... θ₀ θ₁ ...
    x64 = x.double()  # (..., T, D)
    turned = rotate_variant(x64, pairing=pairing, sign=sign)  # (..., T, D)
    return (x64 * angles.cos() + turned * angles.sin()).to(x.dtype)  # (..., T, D)


def rmsnorm_variant(
    x: Tensor,
    weight: Tensor,
    eps: float,
    *,
    eps_outside: bool = False,
    centre: str | None = None,
    reduce: str = "mean",
    use_weight: bool = True,
) -> Tensor:
    """x / √(mean(x², dim=-1) + eps) · weight (computed in float64, returned in x's dtype),
    optionally wrong in one way.

    eps_outside: divide by √mean(x²) + eps. centre="layernorm" subtracts the mean and uses
    the variance (LayerNorm without a bias); centre="numerator" subtracts the mean from x
    only. reduce="sum" sums the squares instead of averaging them, "all" averages over the
    whole tensor. use_weight=False leaves out the gain.
    """
    x64 = x.double()  # (..., dim)
    centred = x64 - x64.mean(dim=-1, keepdim=True) if centre else x64  # (..., dim)
    squares = (centred if centre == "layernorm" else x64).pow(2)  # (..., dim)
    if reduce == "all":
        mean_square = squares.mean()  # ()
    elif reduce == "sum":
        mean_square = squares.sum(dim=-1, keepdim=True)  # (..., 1)
    else:
        mean_square = squares.mean(dim=-1, keepdim=True)  # (..., 1)
    scale = mean_square.sqrt() + eps if eps_outside else (mean_square + eps).sqrt()
    out = centred / scale  # (..., dim)
    if use_weight:
        out = out * weight.double()  # (..., dim)
    return out.to(x.dtype)  # (..., dim)


def decoder_variant(
    layer: nn.Module,
    tgt: Tensor,
    memory: Tensor,
    tgt_mask: Tensor | None = None,
    memory_key_padding_mask: Tensor | None = None,
    *,
    norm_first: bool | None = None,
    cross_keys_from_target: bool = False,
    causal_cross: bool = False,
    use_memory_padding: bool = True,
    use_tgt_mask: bool = True,
    third_norm: str = "norm3",
    cross_first: bool = False,
    no_cross_residual: bool = False,
) -> Tensor:
    """v6's decoder block (``layer``, batch-first, eval mode) with one thing done wrong.

    cross_keys_from_target: cross-attention reads the target, attn(x, x, x).
    causal_cross: the causal mask is put on cross-attention too. use_memory_padding=False
    forgets the memory key-padding mask; use_tgt_mask=False the target's causal mask.
    third_norm: "norm2" reuses the cross-attention's norm for the feed-forward sublayer.
    cross_first: cross-attention before self-attention (with norm1, then self-attention
    with norm2). no_cross_residual: the
    cross-attention's input is not added back. norm_first: the other arrangement.
    """
    pre_norm = layer.norm_first if norm_first is None else norm_first
    self_mask = tgt_mask if use_tgt_mask else None
    padding = memory_key_padding_mask if use_memory_padding else None
    cross_mask = None
    if causal_cross:  # (T, S), True = blocked: target position i reads source positions <= i
        cross_mask = torch.ones(tgt.shape[1], memory.shape[1], dtype=torch.bool).triu(1)

    def self_block(x: Tensor) -> Tensor:
        return layer.self_attn(x, x, x, attn_mask=self_mask, need_weights=False)[0]

    def cross_block(x: Tensor) -> Tensor:
        if cross_keys_from_target:
            return layer.multihead_attn(x, x, x, need_weights=False)[0]
        return layer.multihead_attn(
            x, memory, memory, attn_mask=cross_mask, key_padding_mask=padding, need_weights=False
        )[0]

    norm3 = {"norm3": layer.norm3, "norm2": layer.norm2}[third_norm]
    attention = [("self", self_block), ("cross", cross_block)]
    if cross_first:  # the norms stay in place: norm1 for the first sublayer, norm2 the second
        attention.reverse()
    sublayers = [
        *(
            (name, block, norm)
            for (name, block), norm in zip(attention, (layer.norm1, layer.norm2), strict=True)
        ),
        ("feed_forward", layer.feed_forward, norm3),
    ]
    x = tgt  # (N, T, E)
    for name, sublayer, norm in sublayers:
        keep = 0.0 if (name == "cross" and no_cross_residual) else 1.0
        x = x * keep + sublayer(norm(x)) if pre_norm else norm(x * keep + sublayer(x))
    return x  # (N, T, E)


def online_variant(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    block_size: int,
    *,
    rescale: str = "both",
    divide: bool = True,
    scale: float | None = None,
) -> Tensor:
    """softmax(q kᵀ · scale) v over key blocks (float64, returned in q's dtype),
    optionally wrong in one way; q (B, H, T_q, D), k (B, H, T_k, D), v (B, H, T_k, D_v).

    rescale: "both" (correct), "none", "sum" (l only), "values" (the weighted sum only) or
    "inverted" (both by exp(m_new - m_old)). divide=False leaves out the final division by l.
    scale: 1/√D by default.
    """
    q64, k64, v64 = q.double(), k.double(), v.double()
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    running_max = q64.new_full(q.shape[:-1], float("-inf"))  # (B, H, T_q) m
    running_sum = q64.new_zeros(q.shape[:-1])  # (B, H, T_q) l
    weighted = q64.new_zeros((*q.shape[:-1], v.shape[-1]))  # (B, H, T_q, D_v)
    for start in range(0, k.shape[-2], block_size):
        keys = k64[..., start : start + block_size, :]  # (B, H, S, D)
        scores = q64 @ keys.transpose(-2, -1) * scale  # (B, H, T_q, S)
        new_max = torch.maximum(running_max, scores.amax(dim=-1))  # (B, H, T_q)
        probs = torch.exp(scores - new_max.unsqueeze(-1))  # (B, H, T_q, S)
        gap = new_max - running_max if rescale == "inverted" else running_max - new_max
        factor = torch.where(running_max.isinf(), 0.0, torch.exp(gap))  # (B, H, T_q), 0 first
        keep_sum = rescale in ("both", "sum", "inverted")
        keep_values = rescale in ("both", "values", "inverted")
        running_sum = (factor * running_sum if keep_sum else running_sum) + probs.sum(dim=-1)
        values = v64[..., start : start + block_size, :]  # (B, H, S, D_v)
        old = factor.unsqueeze(-1) * weighted if keep_values else weighted  # (B, H, T_q, D_v)
        weighted = old + probs @ values  # (B, H, T_q, D_v)
        running_max = new_max
    out = weighted / running_sum.unsqueeze(-1) if divide else weighted  # (B, H, T_q, D_v)
    return out.to(q.dtype)
