"""Deliberately broken lab solutions, written the way a learner might write them.

Each one makes one common mistake, and tests/labs/test_lab_checks.py asserts that the lab
checks reject it with a message that names that mistake (``attention_correct``,
``LearnerMultiHead``, ``encoding_correct``, ``LearnerPositions``, ``LearnerBlock``,
``freqs_correct``, ``rotate_correct``, ``rope_correct``, ``rope_complex_half_split`` and
``LearnerRMSNorm`` make none: they must pass). They are written out plainly rather than built from
``transformer_teaching.labs.mistakes``, so the checks are tested against independent code.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transformer.v1_basic_attention import MultiHeadAttention
from transformer.v2_multihead import MultiHeadAttention as V2MultiHeadAttention
from transformer_teaching.labs import solutions
from transformer_teaching.labs.checks import load_learner_module

LABS = Path(__file__).resolve().parents[2] / "tutorials" / "labs"

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


def _maps(model, tokens):
    return model(tokens, return_attention=True)[1]


def maps_batch_averaged(model, tokens, index=0):
    return [layer.mean(dim=0) for layer in _maps(model, tokens)]


def maps_head_averaged(model, tokens, index=0):
    return [layer[index].mean(dim=0) for layer in _maps(model, tokens)]


def maps_wrong_layer(model, tokens, index=0):
    maps = _maps(model, tokens)
    return [maps[-1][index] for _ in maps]


def maps_from_logits(model, tokens, index=0):
    return [layer for layer in model(tokens)]  # the logits of each sequence, not maps


def maps_first_sequence(model, tokens, index=0):
    return [layer[0] for layer in _maps(model, tokens)]


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


def split_correct(x, num_heads):
    """A learner's correct split: view the last axis as (heads, head_dim), then permute."""
    b, t, e = x.shape
    return x.view(b, t, num_heads, e // num_heads).permute(0, 2, 1, 3)


def merge_correct(x):
    """A learner's correct merge: permute back, then flatten the last two axes."""
    return x.permute(0, 2, 1, 3).flatten(2)


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
    """A learner's correct v1 multi-head attention; the subclasses below break one step."""

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


# ---- lab 04: load_from_torch(ours, theirs) and to_torch_mask(attend_mask) ----


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


def mask_not_converted(attend_mask):
    return attend_mask.bool()


def mask_as_float(attend_mask):
    return (attend_mask == 0).float()


# ---- lab 05: sinusoidal_encoding(max_len, d_model) and SinusoidalPositionalEncoding ----


def _encoding(max_len, d_model, *, base=10000.0, two_i=True, swap=False, start=0, sliced=True):
    pe = torch.zeros(max_len, d_model)
    position = torch.arange(start, start + max_len).unsqueeze(1)
    i = torch.arange(0, d_model, 2)
    div_term = torch.exp((i if two_i else i // 2) * -(math.log(base) / d_model))
    sin, cos = torch.sin(position * div_term), torch.cos(position * div_term)
    if swap:
        sin, cos = cos, sin
    pe[:, 0::2] = sin
    pe[:, 1::2] = cos[:, : d_model // 2] if sliced else cos
    return pe


def encoding_correct(max_len, d_model):
    """Not broken: the Annotated Transformer's float32 exp/log form, for the checks to pass."""
    return _encoding(max_len, d_model)


def encoding_sin_cos_swapped(max_len, d_model):
    return _encoding(max_len, d_model, swap=True)


def encoding_exponent_i(max_len, d_model):
    return _encoding(max_len, d_model, two_i=False)


def encoding_base_1000(max_len, d_model):
    return _encoding(max_len, d_model, base=1000.0)


def encoding_base_10e4(max_len, d_model):
    return _encoding(max_len, d_model, base=10e4)


def encoding_positions_from_1(max_len, d_model):
    return _encoding(max_len, d_model, start=1)


def encoding_crashes_on_odd_d_model(max_len, d_model):
    return _encoding(max_len, d_model, sliced=False)


def encoding_loop_with_column_exponent(max_len, d_model):
    pe = torch.zeros(max_len, d_model)
    for pos in range(max_len):
        for j in range(d_model):
            angle = pos / 10000 ** (j / d_model)
            pe[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return pe


def encoding_concatenated(max_len, d_model):
    half = (d_model + 1) // 2
    angle = torch.arange(max_len).unsqueeze(1) / 10000 ** (torch.arange(half) * 2 / d_model)
    return torch.cat([angle.sin(), angle.cos()[:, : d_model - half]], dim=1)


class LearnerPositions(nn.Module):
    """A learner's correct module; the subclasses below break one thing."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.register_buffer("pe", encoding_correct(max_len, d_model))

    def check_length(self, seq_len: int) -> None:
        if seq_len > self.max_len:
            raise ValueError(f"seq_len {seq_len} is longer than max_len {self.max_len}")

    def forward(self, x):
        self.check_length(x.size(1))
        return x + self.pe[: x.size(1)]


class PositionsNotSliced(LearnerPositions):
    def forward(self, x):
        self.check_length(x.size(1))
        return x + self.pe


class PositionsWithoutLengthCheck(LearnerPositions):
    def check_length(self, seq_len):
        pass


class PositionsLengthCheckOffByOne(LearnerPositions):
    def check_length(self, seq_len):
        if seq_len >= self.max_len:
            raise ValueError(f"seq_len {seq_len} is too long for max_len {self.max_len}")


class PositionsAsParameter(LearnerPositions):
    def __init__(self, max_len, d_model):
        super().__init__(max_len, d_model)
        del self.pe
        self.pe = nn.Parameter(encoding_correct(max_len, d_model))


class PositionsNotAdded(LearnerPositions):
    def forward(self, x):
        self.check_length(x.size(1))
        return x


class PositionsInPlace(LearnerPositions):
    def forward(self, x):
        self.check_length(x.size(1))
        x += self.pe[: x.size(1)]
        return x


class PositionsInFloat64(LearnerPositions):
    def __init__(self, max_len, d_model):
        super().__init__(max_len, d_model)
        self.pe = self.pe.double()


# ---- lab 06: TransformerBlock (feed_forward, post-norm and pre-norm forward) ----


class LearnerBlock(nn.Module):
    """A learner's correct block; the subclasses below break one step."""

    def __init__(
        self,
        d_model,
        nhead,
        dim_feedforward=2048,
        dropout=0.1,
        activation="relu",
        layer_norm_eps=1e-5,
        batch_first=False,
        norm_first=False,
    ):
        super().__init__()
        self.self_attn = V2MultiHeadAttention(
            d_model, nhead, dropout=dropout, batch_first=batch_first
        )
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.activation = F.gelu if activation == "gelu" else F.relu
        self.norm_first = norm_first

    def attend(self, x, mask, padding):
        out = self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=padding, need_weights=False)
        return self.dropout1(out[0])

    def feed_forward(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def norms(self):
        return self.norm1, self.norm2

    def post_norm(self, x, sublayer, norm):
        return norm(x + sublayer(x))

    def pre_norm(self, x, sublayer, norm):
        return x + sublayer(norm(x))

    def forward(self, src, src_mask=None, src_key_padding_mask=None):
        step = self.pre_norm if self.norm_first else self.post_norm
        norm1, norm2 = self.norms()
        x = step(src, lambda h: self.attend(h, src_mask, src_key_padding_mask), norm1)
        return step(x, self.feed_forward, norm2)


class BlockWithoutResiduals(LearnerBlock):
    def post_norm(self, x, sublayer, norm):
        return norm(sublayer(x))

    def pre_norm(self, x, sublayer, norm):
        return sublayer(norm(x))


class BlockAlwaysPreNorm(LearnerBlock):
    post_norm = LearnerBlock.pre_norm


class BlockAlwaysPostNorm(LearnerBlock):
    pre_norm = LearnerBlock.post_norm


class BlockWithoutNorm2(LearnerBlock):
    def norms(self):
        return self.norm1, nn.Identity()


class BlockNorm1Twice(LearnerBlock):
    def norms(self):
        return self.norm1, self.norm1


class BlockActivationAfterLinear2(LearnerBlock):
    def feed_forward(self, x):
        return self.activation(self.linear2(self.dropout(self.linear1(x))))


class BlockIgnoresActivation(LearnerBlock):
    def feed_forward(self, x):
        return self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(x)))))


class BlockDropoutInEval(LearnerBlock):
    def feed_forward(self, x):
        return F.dropout(self.linear2(F.dropout(self.activation(self.linear1(x)), 0.1)), 0.1)


class BlockWithoutDropout(LearnerBlock):
    def attend(self, x, mask, padding):
        return self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=padding)[0]

    def feed_forward(self, x):
        return self.linear2(self.activation(self.linear1(x)))


class BlockResidualAfterNorm(LearnerBlock):
    def post_norm(self, x, sublayer, norm):
        return x + norm(sublayer(x))


class BlockResidualFromNorm(LearnerBlock):
    def pre_norm(self, x, sublayer, norm):
        x = norm(x)
        return x + sublayer(x)


class BlockIgnoresMasks(LearnerBlock):
    def attend(self, x, mask, padding):
        return super().attend(x, None, None)


class BlockAlwaysSeqFirst(LearnerBlock):
    def __init__(self, *args, batch_first=False, **kwargs):
        super().__init__(*args, **kwargs)  # batch_first is dropped: self_attn reads (seq, batch)


class BlockInPlaceResidual(LearnerBlock):
    def post_norm(self, x, sublayer, norm):
        x += sublayer(x)
        return norm(x)


class BlockWithOwnNames(LearnerBlock):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ln1, self.ln2 = self.norm1, self.norm2
        del self.norm1, self.norm2

    def norms(self):
        return self.ln1, self.ln2


# ---- lab 07: rope_frequencies, rotate_half, rope(x, theta) and RMSNorm ----


def freqs_correct(head_dim, theta=10000.0):
    """Not broken: Hugging Face's inv_freq, for the checks to pass."""
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))


def freqs_exponent_i(head_dim, theta=10000.0):
    return theta ** (-torch.arange(head_dim // 2) / head_dim)


def freqs_growing(head_dim, theta=10000.0):
    return theta ** (torch.arange(0, head_dim, 2).float() / head_dim)


def freqs_not_divided(head_dim, theta=10000.0):
    return torch.tensor([theta ** (-2.0 * i) for i in range(head_dim // 2)])


def freqs_ignore_theta(head_dim, theta=10000.0):
    return freqs_correct(head_dim)


def freqs_one_per_feature(head_dim, theta=10000.0):
    return 1.0 / (theta ** (torch.arange(head_dim).float() / head_dim))


def rotate_correct(x):
    """Not broken: slicing the halves, for the checks to pass."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotate_interleaved(x):
    """The RoFormer pairing (2i, 2i+1), written the way Meta-style code does it."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)  # (..., D/2, 2)
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).reshape(x.shape)


def rotate_wrong_way(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x2, -x1), dim=-1)


def rotate_without_minus(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x2, x1), dim=-1)


def _rope(x, theta, *, freqs=freqs_correct, rotate=rotate_correct, start=0, repeat="cat"):
    seq_len, head_dim = x.shape[-2], x.shape[-1]
    positions = torch.arange(start, start + seq_len).float()
    angles = torch.outer(positions, freqs(head_dim, theta))  # (T, D/2)
    if repeat == "cat":
        emb = torch.cat((angles, angles), dim=-1)
    else:
        emb = angles.repeat_interleave(2, dim=-1)
    return x * emb.cos() + rotate(x) * emb.sin()


def rope_correct(x, theta=10000.0):
    """Not broken: Hugging Face's cos/sin tables, for the checks to pass."""
    return _rope(x, theta)


def rope_complex_half_split(x, theta=10000.0):
    """Not broken: the halves as the real and imaginary parts of D/2 complex numbers."""
    seq_len, head_dim = x.shape[-2:]
    angles = torch.outer(torch.arange(seq_len).float(), freqs_correct(head_dim, theta))
    half = head_dim // 2
    z = torch.complex(x[..., :half], x[..., half:]) * torch.polar(torch.ones_like(angles), angles)
    return torch.cat((z.real, z.imag), dim=-1)


def rope_interleaved(x, theta=10000.0):
    """Meta's original Llama code: consecutive features as complex numbers."""
    seq_len, head_dim = x.shape[-2:]
    angles = torch.outer(torch.arange(seq_len).float(), freqs_correct(head_dim, theta))
    z = torch.view_as_complex(x.float().reshape(*x.shape[:-1], head_dim // 2, 2).contiguous())
    rotated = z * torch.polar(torch.ones_like(angles), angles)  # (..., T, D/2)
    return torch.view_as_real(rotated).flatten(-2)


def rope_interleaved_turn(x, theta=10000.0):
    return _rope(x, theta, rotate=rotate_interleaved)


def rope_interleaved_table(x, theta=10000.0):
    return _rope(x, theta, repeat="interleave")


def rope_positions_from_1(x, theta=10000.0):
    return _rope(x, theta, start=1)


def rope_exponent_i(x, theta=10000.0):
    return _rope(x, theta, freqs=freqs_exponent_i)


def rope_growing_frequencies(x, theta=10000.0):
    return _rope(x, theta, freqs=freqs_growing)


def rope_wrong_way(x, theta=10000.0):
    return _rope(x, theta, rotate=rotate_wrong_way)


def rope_ignores_theta(x, theta=10000.0):
    return _rope(x, 10000.0)


def rope_angles_not_repeated(x, theta=10000.0):
    seq_len, head_dim = x.shape[-2:]
    angles = torch.outer(torch.arange(seq_len).float(), freqs_correct(head_dim, theta))
    return x * angles.cos() + rotate_correct(x) * angles.sin()


def rope_in_float64(x, theta=10000.0):
    return _rope(x.double(), theta)


class LearnerRMSNorm(nn.Module):
    """A learner's correct RMSNorm; the subclasses below break one thing."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def mean_square(self, x):
        return x.pow(2).mean(-1, keepdim=True)

    def forward(self, x):
        return x * torch.rsqrt(self.mean_square(x) + self.eps) * self.weight


class RMSNormEpsOutside(LearnerRMSNorm):
    def forward(self, x):
        return x / (torch.sqrt(self.mean_square(x)) + self.eps) * self.weight


class RMSNormAsLayerNorm(LearnerRMSNorm):
    def forward(self, x):
        centred = x - x.mean(-1, keepdim=True)
        return centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class RMSNormSubtractsMean(LearnerRMSNorm):
    def forward(self, x):
        centred = x - x.mean(-1, keepdim=True)
        return centred * torch.rsqrt(self.mean_square(x) + self.eps) * self.weight


class RMSNormRootOfSum(LearnerRMSNorm):
    def mean_square(self, x):
        return (x * x).sum(dim=-1, keepdim=True)


class RMSNormWholeTensorMean(LearnerRMSNorm):
    def mean_square(self, x):
        return x.pow(2).mean()


class RMSNormWithoutWeight(LearnerRMSNorm):
    def forward(self, x):
        return x * torch.rsqrt(self.mean_square(x) + self.eps)


class RMSNormIgnoresEps(LearnerRMSNorm):
    def __init__(self, dim, eps=1e-6):
        super().__init__(dim)


class RMSNormWithBias(LearnerRMSNorm):
    def __init__(self, dim, eps=1e-6):
        super().__init__(dim, eps)
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return super().forward(x) + self.bias


class RMSNormWeightAsTensor(LearnerRMSNorm):
    def __init__(self, dim, eps=1e-6):
        super().__init__(dim, eps)
        del self.weight
        self.weight = torch.ones(dim)


class RMSNormRandomWeight(LearnerRMSNorm):
    def __init__(self, dim, eps=1e-6):
        super().__init__(dim, eps)
        self.weight = nn.Parameter(torch.randn(dim))


class RMSNormWithoutKeepdim(LearnerRMSNorm):
    def mean_square(self, x):
        return x.pow(2).mean(-1)


class RMSNormInPlace(LearnerRMSNorm):
    def forward(self, x):
        x *= torch.rsqrt(self.mean_square(x) + self.eps)
        return x * self.weight


# ---- lab 01: two more mistakes ----


def attention_by_sqrt_d_v(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(value.size(-1))
    if mask is not None:
        scores = scores.masked_fill(mask == 0, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return weights @ value, weights


def attention_transpose_1_2(query, key, value, mask=None):
    scores = query @ key.transpose(1, 2) / math.sqrt(query.size(-1))
    if mask is not None:
        scores = scores.masked_fill(mask == 0, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return weights @ value, weights


# ---- lab 08: cross_attention and DecoderBlock ----


def cross_correct(attn, x, memory, memory_key_padding_mask=None):
    out, _ = attn(x, memory, memory, key_padding_mask=memory_key_padding_mask)
    return out


def cross_keys_from_target(attn, x, memory, memory_key_padding_mask=None):
    return attn(x, x, x, need_weights=False)[0]


def cross_causal(attn, x, memory, memory_key_padding_mask=None):
    mask = torch.ones(x.shape[1], memory.shape[1], dtype=torch.bool).triu(1)
    return attn(x, memory, memory, attn_mask=mask, key_padding_mask=memory_key_padding_mask)[0]


def cross_forgets_padding(attn, x, memory, memory_key_padding_mask=None):
    return attn(x, memory, memory)[0]


def cross_queries_from_memory(attn, x, memory, memory_key_padding_mask=None):
    return attn(memory, x, x)[0]


LearnerDecoderBlock = load_learner_module(
    LABS / "lab08_cross_attention" / "solutions" / "decoder.py"
).DecoderBlock  # the lab's solution; the subclasses below break one step


class DecoderCrossKeysFromTarget(LearnerDecoderBlock):
    def cross_block(self, x, memory, padding):
        return self.dropout2(self.multihead_attn(x, x, x)[0])


class DecoderCausalCross(LearnerDecoderBlock):
    def cross_block(self, x, memory, padding):
        seq = 0 if not self.multihead_attn.batch_first else 1
        mask = torch.ones(x.shape[seq], memory.shape[seq], dtype=torch.bool).triu(1)
        out = self.multihead_attn(x, memory, memory, attn_mask=mask, key_padding_mask=padding)
        return self.dropout2(out[0])


class DecoderForgetsPadding(LearnerDecoderBlock):
    def cross_block(self, x, memory, padding):
        return super().cross_block(x, memory, None)


class DecoderNotCausal(LearnerDecoderBlock):
    def self_block(self, x, tgt_mask):
        return super().self_block(x, None)


class DecoderCrossFirst(LearnerDecoderBlock):
    def sublayers(self, memory, tgt_mask, padding):
        first, second, third = super().sublayers(memory, tgt_mask, padding)
        return [(second[0], self.norm1), (first[0], self.norm2), third]


class DecoderNorm2Twice(LearnerDecoderBlock):
    def sublayers(self, memory, tgt_mask, padding):
        first, second, third = super().sublayers(memory, tgt_mask, padding)
        return [first, second, (third[0], self.norm2)]


class DecoderWithoutCrossResidual(LearnerDecoderBlock):
    def forward(self, tgt, memory, tgt_mask=None, memory_key_padding_mask=None):
        x = tgt
        layers = self.sublayers(memory, tgt_mask, memory_key_padding_mask)
        for index, (sublayer, norm) in enumerate(layers):
            keep = 0.0 if index == 1 else 1.0
            x = x * keep + sublayer(norm(x)) if self.norm_first else norm(x * keep + sublayer(x))
        return x


class DecoderAlwaysPostNorm(LearnerDecoderBlock):
    def __init__(self, *args, norm_first=False, **kwargs):
        super().__init__(*args, **kwargs)  # norm_first is dropped: always post-norm


# ---- lab 09: CausalBlock, GPT and generate ----

_gpt_solution = load_learner_module(LABS / "lab09_gpt" / "solutions" / "gpt.py")
gpt_correct = _gpt_solution  # CausalBlock, GPT and generate as the lab's solution has them


class GPTBlockNotCausal(_gpt_solution.CausalBlock):
    def forward(self, x):
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h, need_weights=False)[0]
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x)), approximate="tanh"))


class GPTBlockExactGelu(_gpt_solution.CausalBlock):
    def forward(self, x):
        future = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).triu(1)
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h, attn_mask=future, need_weights=False)[0]
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class GPTWithoutPositions(_gpt_solution.GPT):
    def forward(self, tokens):
        x = self.wte(tokens)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


class GPTUntiedHead(_gpt_solution.GPT):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lm_head.weight = nn.Parameter(self.wte.weight.detach().clone())


def generate_from_first_position(model, tokens, max_new_tokens, temperature=1.0, generator=None):
    for _ in range(max_new_tokens):
        logits = model(tokens[:, -model.config.n_positions :])[:, 0]
        if temperature == 0:
            chosen = logits.argmax(dim=-1, keepdim=True)
        else:
            chosen = torch.multinomial(F.softmax(logits / temperature, -1), 1, generator=generator)
        tokens = torch.cat([tokens, chosen], dim=1)
    return tokens


def generate_temperature_after_softmax(model, tokens, max_new_tokens, temperature=1.0,
                                       generator=None):  # fmt: skip
    for _ in range(max_new_tokens):
        logits = model(tokens[:, -model.config.n_positions :])[:, -1]
        if temperature == 0:
            chosen = logits.argmax(dim=-1, keepdim=True)
        else:
            chosen = torch.multinomial(F.softmax(logits, -1) / temperature, 1, generator=generator)
        tokens = torch.cat([tokens, chosen], dim=1)
    return tokens


def generate_without_cropping(model, tokens, max_new_tokens, temperature=1.0, generator=None):
    for _ in range(max_new_tokens):
        logits = model(tokens)[:, -1]
        chosen = (logits.argmax(dim=-1, keepdim=True) if temperature == 0
                  else torch.multinomial(F.softmax(logits / temperature, -1), 1,
                                         generator=generator))  # fmt: skip
        tokens = torch.cat([tokens, chosen], dim=1)
    return tokens


# ---- lab 10: online_softmax_attention and cached_decode_step ----

efficient_correct = load_learner_module(LABS / "lab10_efficient" / "solutions" / "efficient.py")


def _online(q, k, v, block_size, *, rescale_sum=True, rescale_acc=True, inverted=False,
            divide=True, subtract_max=True):  # fmt: skip
    d = q.shape[-1]
    m = torch.full(q.shape[:-1], -math.inf)
    l = torch.zeros(q.shape[:-1])  # noqa: E741
    acc = torch.zeros(*q.shape[:-1], v.shape[-1])
    for k_block, v_block in zip(k.split(block_size, 2), v.split(block_size, 2), strict=True):
        s = torch.einsum("bhqd,bhkd->bhqk", q, k_block) / math.sqrt(d)
        if subtract_max:
            m_new = torch.max(m, s.max(dim=-1).values)
            p = (s - m_new[..., None]).exp()
            alpha = (m_new - m).exp() if inverted else (m - m_new).exp()
            alpha = torch.nan_to_num(alpha, posinf=0.0)  # the first block: nothing to keep
        else:
            m_new, p, alpha = m, s.exp(), torch.ones_like(m)
        l = (alpha * l if rescale_sum else l) + p.sum(-1)  # noqa: E741
        acc = (alpha[..., None] * acc if rescale_acc else acc) + p @ v_block
        m = m_new
    return acc / l[..., None] if divide else acc


def online_correct(q, k, v, block_size):
    """Not broken: split, einsum and an alpha factor, for the checks to pass."""
    return _online(q, k, v, block_size)


def online_without_rescale(q, k, v, block_size):
    return _online(q, k, v, block_size, rescale_sum=False, rescale_acc=False)


def online_rescales_only_the_sum(q, k, v, block_size):
    return _online(q, k, v, block_size, rescale_acc=False)


def online_rescales_only_the_values(q, k, v, block_size):
    return _online(q, k, v, block_size, rescale_sum=False)


def online_inverted_rescale(q, k, v, block_size):
    return _online(q, k, v, block_size, inverted=True)


def online_without_division(q, k, v, block_size):
    return _online(q, k, v, block_size, divide=False)


def online_without_max(q, k, v, block_size):
    return _online(q, k, v, block_size, subtract_max=False)


def online_without_scale(q, k, v, block_size):
    return _online(q * math.sqrt(q.shape[-1]), k, v, block_size)


def online_full_softmax(q, k, v, block_size):
    """Ignores block_size: the whole score matrix at once."""
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v


def online_sdpa(q, k, v, block_size):
    return F.scaled_dot_product_attention(q, k, v)


def _rope_at(x, position):
    d = x.shape[-1]
    freqs = 1.0 / 10000 ** (torch.arange(0, d, 2).float() / d)
    angles = torch.cat([position * freqs, position * freqs])
    return x * angles.cos() + rotate_correct(x) * angles.sin()


def _decode(x_new, cache_k, cache_v, w_q, w_k, w_v, position, *, offset=0, append_after=False,
            rotate_cached=True, rotate_q=True, rotate_v=False):  # fmt: skip
    q, k, v = F.linear(x_new, w_q), F.linear(x_new, w_k), F.linear(x_new, w_v)
    at = position + offset
    q = _rope_at(q, at) if rotate_q else q
    k_rot = _rope_at(k, at)
    v = _rope_at(v, at) if rotate_v else v
    new_k = torch.cat([cache_k, k_rot if rotate_cached else k], dim=1)
    new_v = torch.cat([cache_v, v], dim=1)
    keys, values = (cache_k, cache_v) if append_after else (new_k, new_v)
    if not rotate_cached and not append_after:  # this step still sees its own key rotated
        keys = torch.cat([cache_k, k_rot], dim=1)
    weights = torch.softmax(q @ keys.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ values, new_k, new_v


def decode_correct(x_new, cache_k, cache_v, w_q, w_k, w_v, position):
    """Not broken: F.linear and a RoPE written out, for the checks to pass."""
    return _decode(x_new, cache_k, cache_v, w_q, w_k, w_v, position)


def decode_position_plus_one(x_new, cache_k, cache_v, w_q, w_k, w_v, position):
    return _decode(x_new, cache_k, cache_v, w_q, w_k, w_v, position, offset=1)


def decode_position_minus_one(x_new, cache_k, cache_v, w_q, w_k, w_v, position):
    return _decode(x_new, cache_k, cache_v, w_q, w_k, w_v, position, offset=-1)


def decode_appends_after_attention(x_new, cache_k, cache_v, w_q, w_k, w_v, position):
    return _decode(x_new, cache_k, cache_v, w_q, w_k, w_v, position, append_after=True)


def decode_caches_unrotated_keys(x_new, cache_k, cache_v, w_q, w_k, w_v, position):
    return _decode(x_new, cache_k, cache_v, w_q, w_k, w_v, position, rotate_cached=False)


def decode_query_not_rotated(x_new, cache_k, cache_v, w_q, w_k, w_v, position):
    return _decode(x_new, cache_k, cache_v, w_q, w_k, w_v, position, rotate_q=False)


def decode_rotates_values(x_new, cache_k, cache_v, w_q, w_k, w_v, position):
    return _decode(x_new, cache_k, cache_v, w_q, w_k, w_v, position, rotate_v=True)


def decode_query_one_ahead(x_new, cache_k, cache_v, w_q, w_k, w_v, position):
    """The key at position, the query at position + 1."""
    out, new_k, new_v = _decode(x_new, cache_k, cache_v, w_q, w_k, w_v, position)
    q = _rope_at(F.linear(x_new, w_q), position + 1)
    weights = torch.softmax(q @ new_k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ new_v, new_k, new_v


def decode_returns_output_only(x_new, cache_k, cache_v, w_q, w_k, w_v, position):
    return _decode(x_new, cache_k, cache_v, w_q, w_k, w_v, position)[0]


def decode_grows_cache_in_place(x_new, cache_k, cache_v, w_q, w_k, w_v, position):
    out, new_k, new_v = _decode(x_new, cache_k, cache_v, w_q, w_k, w_v, position)
    cache_k.mul_(1.0 + 1e-3)  # "scratch" use of the caller's cache
    return out, new_k, new_v
