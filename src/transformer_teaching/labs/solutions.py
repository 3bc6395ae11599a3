"""Solutions to the labs that have no stage module of their own: lab 02, lab 04, and lab 07's
``rope``.

The other labs are solved by the stages themselves: labs 01 and 03 by
``transformer.v1_basic_attention``'s ``attention``, ``split_heads``, ``merge_heads`` and
``MultiHeadAttention``; lab 05 by ``transformer.v3_positional``'s ``sinusoidal_encoding`` and
``SinusoidalPositionalEncoding``; lab 06 by ``transformer.v4_block.TransformerBlock``; lab 07's
``rope_frequencies``, ``rotate_half`` and ``RMSNorm`` by ``transformer.v7_modern``'s, whose
rotation takes cos and sin tables (``apply_rope``) where the lab's ``rope`` takes x alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import seaborn as sns
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from transformer.contract import SequenceModel
from transformer.v7_modern import RotaryEmbedding, apply_rope

# ---- lab 02: read and draw attention ----


def attention_maps(model: SequenceModel, tokens: Tensor, index: int = 0) -> list[Tensor]:
    """Run ``model`` on tokens (batch, seq); return sequence ``index``'s weights, one
    (heads, seq, seq) tensor per layer."""
    _, maps = model(tokens, return_attention=True)  # per layer (batch, heads, seq, seq)
    return [layer[index] for layer in maps]  # per layer (H, T, T)


def plot_attention(weights: Tensor, tokens: Sequence[object], title: str) -> Figure:
    """One heatmap of weights (seq, seq): rows are queries, columns keys, colours 0..1."""
    labels = [str(t) for t in tokens]
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    sns.heatmap(
        weights.detach().cpu().numpy(),  # (T, T): row i = where query i looked
        ax=ax,
        vmin=0.0,
        vmax=1.0,
        cmap="viridis",
        square=True,
        xticklabels=labels,
        yticklabels=labels,
        cbar_kws={"label": "attention weight"},
    )
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(title)
    return fig


# ---- lab 04: nn.MultiheadAttention's conventions ----


def to_torch_mask(attend_mask: Tensor) -> Tensor:
    """v1's mask (L, S), 0/False = blocked -> nn.MultiheadAttention's attn_mask, True = blocked."""
    return attend_mask == 0  # (L, S) bool


@torch.no_grad()
def load_from_torch(ours: nn.Module, theirs: nn.MultiheadAttention) -> None:
    """Copy ``theirs``' weights into v1's module ``ours`` (w_q, w_k, w_v, w_o), in place.

    ``in_proj_weight`` (3E, E) stacks the q, k and v rows; ``in_proj_bias`` (3E,) likewise.
    """
    weights = theirs.in_proj_weight.chunk(3)  # q, k, v: 3 x (E, E)
    biases = theirs.in_proj_bias.chunk(3)  # q, k, v: 3 x (E,)
    for layer, weight, bias in zip((ours.w_q, ours.w_k, ours.w_v), weights, biases, strict=True):
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    ours.w_o.weight.copy_(theirs.out_proj.weight)
    ours.w_o.bias.copy_(theirs.out_proj.bias)


# ---- lab 07: RoPE at positions 0, 1, ..., seq_len - 1 ----


def rope(x: Tensor, theta: float = 10000.0) -> Tensor:
    """x (..., seq_len, head_dim) rotated by RoPE (half-split pairing) at positions 0..T-1."""
    positions = torch.arange(x.shape[-2], device=x.device)  # (T,)
    cos, sin = RotaryEmbedding(x.shape[-1], theta).to(x.device)(positions, x.dtype)  # (T, D)
    return apply_rope(x, cos, sin)  # (..., T, D)


def cross_attention(
    attn: nn.Module, x: Tensor, memory: Tensor, memory_key_padding_mask: Tensor | None = None
) -> Tensor:
    """Lab 08: queries from the target x (N, T, E), keys and values from memory (N, S, E)."""
    return attn(x, memory, memory, key_padding_mask=memory_key_padding_mask, need_weights=False)[
        0
    ]  # (N, T, E)
