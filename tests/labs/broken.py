"""Deliberately broken lab solutions, written the way a learner might write them.

Each one makes one common mistake, and tests/labs/test_lab_checks.py asserts that the lab
checks reject it with a message that names that mistake (``attention_correct`` and
``LearnerMultiHead`` make none: they must pass). They are written out plainly rather than
built from ``transformer.labs.mistakes``, so the checks are tested against independent code.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import seaborn as sns
import torch
from torch import Tensor, nn

from transformer.labs import solutions
from transformer.v1_basic_attention import MultiHeadAttention

# ---- lab 01: attention(query, key, value, mask) ----


def _attention(query, key, value, mask, *, divide_by=None, blocked=None, dim=-1, fill=None):
    d_k = query.size(-1)
    scores = query @ key.transpose(-2, -1) / (math.sqrt(d_k) if divide_by is None else divide_by)
    if mask is not None:
        where = (mask == 0) if blocked is None else blocked(mask)
        scores = scores.masked_fill(where, float("-inf") if fill is None else fill)
    weights = torch.softmax(scores, dim=dim)
    return weights @ value, weights


def attention_correct(query, key, value, mask=None):
    """Not broken: how a learner might write it, for the checks to pass."""
    return _attention(query, key, value, mask)


def attention_no_scaling(query, key, value, mask=None):
    return _attention(query, key, value, mask, divide_by=1.0)


def attention_scaled_by_dk(query, key, value, mask=None):
    return _attention(query, key, value, mask, divide_by=query.size(-1))


def attention_softmax_over_queries(query, key, value, mask=None):
    return _attention(query, key, value, mask, dim=-2)


def attention_mask_inverted(query, key, value, mask=None):
    return _attention(query, key, value, mask, blocked=lambda m: m == 1)


def attention_mask_filled_with_zero(query, key, value, mask=None):
    return _attention(query, key, value, mask, fill=0.0)


def attention_returns_weights_first(query, key, value, mask=None):
    output, weights = _attention(query, key, value, mask)
    return weights, output


# ---- lab 02: attention_maps(model, tokens, index) and plot_attention(weights, tokens, title) ----


def maps_batch_averaged(model, tokens, index=0):
    model(tokens)
    return [layer.mean(dim=0) for layer in model.attention_maps]


def maps_head_averaged(model, tokens, index=0):
    model(tokens)
    return [layer[index].mean(dim=0) for layer in model.attention_maps]


def maps_wrong_layer(model, tokens, index=0):
    model(tokens)
    return [model.attention_maps[-1][index] for _ in model.attention_maps]


def maps_without_running_the_model(model, tokens, index=0):
    return [layer[index] for layer in model.attention_maps]


def maps_first_sequence(model, tokens, index=0):
    model(tokens)
    return [layer[0] for layer in model.attention_maps]


def _plot(weights, tokens, title, *, transpose=False, labels=True, reverse=False, fixed=True):
    names = [str(t) for t in tokens]
    names = names[::-1] if reverse else names
    fig, ax = plt.subplots()
    data = weights.T if transpose else weights
    kwargs = {"xticklabels": names, "yticklabels": names} if labels else {}
    kwargs.update({"vmin": 0.0, "vmax": 1.0} if fixed else {})
    sns.heatmap(data.numpy(), ax=ax, **kwargs)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(title)
    return fig


def plot_transposed(weights, tokens, title):
    return _plot(weights, tokens, title, transpose=True)


def plot_without_tick_labels(weights, tokens, title):
    return _plot(weights, tokens, title, labels=False)


def plot_reversed_tick_labels(weights, tokens, title):
    return _plot(weights, tokens, title, reverse=True)


def plot_colour_scale_not_fixed(weights, tokens, title):
    return _plot(weights, tokens, title, fixed=False)


def plot_swapped_axis_titles(weights, tokens, title):
    fig = _plot(weights, tokens, title)
    ax = fig.axes[0]
    ax.set_xlabel("query")
    ax.set_ylabel("key")
    return fig


def plot_returns_axes(weights, tokens, title):
    return _plot(weights, tokens, title).axes[0]


# ---- lab 03: split_heads, merge_heads, MultiHeadAttention ----


def split_without_transpose(x, num_heads):
    batch, seq, d_model = x.shape
    return x.view(batch, num_heads, seq, d_model // num_heads)


def split_returns_time_first(x, num_heads):
    batch, seq, d_model = x.shape
    return x.view(batch, seq, num_heads, d_model // num_heads)


def merge_without_transpose(x):
    batch, heads, seq, head_dim = x.shape
    return x.reshape(batch, seq, heads * head_dim)


def merge_with_view_after_transpose(x):
    batch, heads, seq, head_dim = x.shape
    return x.transpose(1, 2).view(batch, seq, heads * head_dim)


class LearnerMultiHead(nn.Module):
    """A learner's correct seed multi-head attention; the subclasses below break one step."""

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, d_model // num_heads
        self.w_q, self.w_k = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.w_v, self.w_o = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)

    def split(self, x: Tensor) -> Tensor:
        batch, seq, _ = x.shape
        return x.view(batch, seq, self.num_heads, self.head_dim).transpose(1, 2)

    def merge(self, x: Tensor) -> Tensor:
        batch, _, seq, _ = x.shape
        return x.transpose(1, 2).reshape(batch, seq, -1)

    def scale(self) -> float:
        return math.sqrt(self.head_dim)

    def forward(self, query, key, value, mask=None):
        q, k, v = (
            self.split(self.w_q(query)),
            self.split(self.w_k(key)),
            self.split(self.w_v(value)),
        )
        scores = q @ k.transpose(-2, -1) / self.scale()
        if mask is not None:
            scores = scores.masked_fill(mask == 0, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return self.w_o(self.merge(weights @ v)), weights


class MultiHeadMergedWrong(LearnerMultiHead):
    def merge(self, x):
        batch, _, seq, _ = x.shape
        return x.reshape(batch, seq, -1)


class MultiHeadScaledByDModel(LearnerMultiHead):
    def scale(self):
        return math.sqrt(self.num_heads * self.head_dim)


class MultiHeadMaskInverted(LearnerMultiHead):
    """Blocks what should attend; rows with every key allowed become NaN (all blocked)."""

    def forward(self, query, key, value, mask=None):
        return super().forward(query, key, value, None if mask is None else mask == 0)


class MultiHeadAveragedWeights(LearnerMultiHead):
    def forward(self, query, key, value, mask=None):
        output, weights = super().forward(query, key, value, mask)
        return output, weights.mean(dim=1)


# ---- lab 04: load_from_torch(ours, theirs) and to_torch_mask(seed_mask) ----


@torch.no_grad()
def _load(ours, theirs, order=(0, 1, 2), transpose=False, bias=True):
    E = theirs.embed_dim
    for layer, i in zip((ours.w_q, ours.w_k, ours.w_v), order, strict=True):
        weight = theirs.in_proj_weight[i * E : (i + 1) * E]
        layer.weight.copy_(weight.T if transpose else weight)
        if bias:
            layer.bias.copy_(theirs.in_proj_bias[i * E : (i + 1) * E])
    ours.w_o.weight.copy_(theirs.out_proj.weight)
    ours.w_o.bias.copy_(theirs.out_proj.bias)


def load_qkv_swapped(ours, theirs):
    _load(ours, theirs, order=(1, 0, 2))


def load_kv_swapped(ours, theirs):
    _load(ours, theirs, order=(0, 2, 1))


def load_transposed(ours, theirs):
    _load(ours, theirs, transpose=True)


def load_without_biases(ours, theirs):
    _load(ours, theirs, bias=False)


def load_into_a_copy(ours, theirs):
    fresh = MultiHeadAttention(theirs.embed_dim, theirs.num_heads)
    solutions.load_from_torch(fresh, theirs)
    return fresh


def mask_not_converted(seed_mask):
    return seed_mask.bool()


def mask_as_float(seed_mask):
    return (seed_mask == 0).float()
