"""Lab 06 checks: the transformer block, a drop-in for ``torch.nn.TransformerEncoderLayer``.

The learner's ``TransformerBlock(d_model, nhead, dim_feedforward=..., dropout=...,
activation=..., batch_first=..., norm_first=...)`` must use PyTorch's parameter names, so
each check loads an ``nn.TransformerEncoderLayer``'s state dict into it (with random biases
and LayerNorm weights: PyTorch's zeros and ones would hide a swapped or missing norm), puts
both in eval mode and requires the same numbers within 1e-5:

* ``check_feed_forward``: ``block.feed_forward(x)``, ReLU and GELU;
* ``check_post_norm`` and ``check_pre_norm``: ``block(src, src_mask, src_key_padding_mask)``
  with ``norm_first=False`` and ``True``, ReLU and GELU, batch first or not, with no mask,
  a causal mask, a padding mask and both.

Mistakes are recognised by computing them on purpose with ``transformer.v4_block``'s block
(``transformer_teaching.labs.mistakes.block_variant``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from transformer.v1_basic_attention import causal_mask
from transformer.v4_block import TransformerBlock
from transformer_teaching.labs.checks import (
    Mistake,
    compare,
    describe,
    expect_shape,
    expect_tensor,
    fail,
    load_reference,
    run,
    run_on_copies,
)
from transformer_teaching.labs.mistakes import block_variant, feed_forward_variant

BlockCls = Callable[..., nn.Module]
DROPOUT = 0.1  # nn.TransformerEncoderLayer's default: eval mode must switch it off
LAYERS = "self_attn (v2's MultiHeadAttention), linear1, linear2, norm1, norm2"


@dataclass(frozen=True)
class BlockCase:
    d_model: int
    nhead: int
    dim_feedforward: int
    batch: int
    seq: int
    activation: str
    batch_first: bool
    mask: str | None  # None, "causal", "padding" or "both"

    def kwargs(self, norm_first: bool) -> dict:
        return {
            "dim_feedforward": self.dim_feedforward,
            "dropout": DROPOUT,
            "activation": self.activation,
            "batch_first": self.batch_first,
            "norm_first": norm_first,
        }

    def signature(self, norm_first: bool) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs(norm_first).items())
        return f"TransformerBlock({self.d_model}, {self.nhead}, {args})"

    def inputs(self, gen: torch.Generator) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """src (N, S, E) if batch_first else (S, N, E); src_mask (S, S) and padding (N, S),
        PyTorch's convention: True = blocked. No query loses every key."""
        layout = (self.batch, self.seq) if self.batch_first else (self.seq, self.batch)
        src = torch.randn(*layout, self.d_model, generator=gen)
        mask = ~causal_mask(self.seq) if self.mask in ("causal", "both") else None  # (S, S)
        padding = None
        if self.mask in ("padding", "both"):
            lengths = torch.randint(1, self.seq + 1, (self.batch,), generator=gen)  # (N,)
            lengths[0] = self.seq - 1  # at least one sequence is padded
            padding = torch.arange(self.seq) >= lengths.unsqueeze(1)  # (N, S) True = padding
        return src, mask, padding


CASES = [
    BlockCase(8, 2, 16, 2, 5, "relu", True, None),
    BlockCase(12, 3, 24, 3, 4, "gelu", False, None),
    BlockCase(16, 4, 32, 2, 6, "relu", False, "causal"),
    BlockCase(8, 1, 12, 3, 5, "gelu", True, "padding"),
    BlockCase(12, 2, 20, 2, 6, "gelu", True, "both"),
]


def make_torch_layer(case: BlockCase, norm_first: bool, seed: int) -> nn.TransformerEncoderLayer:
    """``nn.TransformerEncoderLayer`` in eval mode with random biases and LayerNorm weights."""
    torch.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(case.d_model, case.nhead, **case.kwargs(norm_first))
    with torch.no_grad():
        for name, parameter in layer.named_parameters():
            if name.startswith("norm") and name.endswith("weight"):
                parameter.normal_(1.0, 0.5)
            elif name.endswith("bias"):
                parameter.normal_(0.0, 0.5)
    return layer.eval()


def _same_twice(what: str, fn: Callable[..., object], inputs: dict, ctx: str, **kwargs) -> Tensor:
    """The learner's result on ``inputs``; two calls in eval mode must agree exactly."""
    __tracebackhide__ = True
    with torch.no_grad():
        first = expect_tensor(what, run_on_copies(what, fn, inputs, context=ctx, **kwargs), ctx)
        second = run_on_copies(what, fn, inputs, context=ctx, **kwargs)
    if isinstance(second, Tensor) and not torch.equal(first, second):
        fail(
            f"{what}: two calls on the same input in eval mode differ, so dropout is active in "
            "eval mode: use nn.Dropout modules (block.eval() switches them off), or "
            "F.dropout(x, p, training=self.training)",
            ctx,
        )
    return first


def _setup(
    block_cls: BlockCls, case: BlockCase, norm_first: bool, seed: int
) -> tuple[nn.Module, TransformerBlock, nn.TransformerEncoderLayer]:
    """(learner's block, v4's block, nn.TransformerEncoderLayer), all with the same weights."""
    __tracebackhide__ = True
    theirs = make_torch_layer(case, norm_first, seed)
    ctx = case.signature(norm_first) + ", loaded from nn.TransformerEncoderLayer"
    what = case.signature(norm_first)
    ours = run(what, block_cls, case.d_model, case.nhead, context=ctx, **case.kwargs(norm_first))
    load_reference(ours, theirs.state_dict(), "TransformerBlock", "nn.TransformerEncoderLayer",
                   LAYERS, ctx)  # fmt: skip
    reference = TransformerBlock(case.d_model, case.nhead, **case.kwargs(norm_first))
    reference.load_state_dict(theirs.state_dict())
    return ours, reference.eval(), theirs


FEED_FORWARD_MISTAKES = [
    (
        "the activation is applied after linear2: the feed-forward layer is "
        "linear2(dropout(activation(linear1(x))))",
        {"activation_after_linear2": True},
    ),
    (
        "there is no activation between linear1 and linear2: two linear layers in a row are "
        "one linear layer",
        {"activation": "none"},
    ),
    (
        "the activation argument is ignored: activation='gelu' means F.gelu, 'relu' F.relu",
        {"activation": "relu"},
    ),
]


def check_feed_forward(block_cls: BlockCls) -> None:
    """Lab 06: ``block_cls(...).feed_forward(x)`` is ``linear2(activation(linear1(x)))`` in eval."""
    __tracebackhide__ = True
    for seed, case in enumerate(CASES[:2]):
        ours, reference, theirs = _setup(block_cls, case, False, seed)
        x = case.inputs(torch.Generator().manual_seed(seed))[0]  # (.., d_model)
        ctx = case.signature(False) + ", " + describe(x=x)
        what = "TransformerBlock.feed_forward()"
        feed_forward = getattr(ours, "feed_forward", None)
        if not callable(feed_forward):
            fail(f"{what}: the block has no method feed_forward(x)", ctx)
        out = _same_twice(what, feed_forward, {"x": x}, ctx)
        with torch.no_grad():
            expected = theirs.linear2(theirs.activation(theirs.linear1(x)))  # (.., d_model)
            mistakes = [
                (t, feed_forward_variant(reference, x, **kw)) for t, kw in FEED_FORWARD_MISTAKES
            ]
        expect_shape(what, out, x.shape, "like x", ctx)
        compare(what, out, expected, mistakes, ctx)
        ours.train()
        with torch.no_grad():
            trained = run(what, feed_forward, x, context=ctx)
        if isinstance(trained, Tensor) and torch.equal(trained, out):
            fail(
                f"{what}: in training mode (block.train()) the output equals the eval output, "
                f"so dropout (p={DROPOUT}) is never applied: the feed-forward layer is "
                "dropout2(linear2(dropout(activation(linear1(x)))))",
                ctx,
            )


def block_mistakes(norm_first: bool, case: BlockCase) -> list[tuple[str, dict]]:
    """Each common mistake of the block in words, with ``block_variant``'s keywords."""
    if norm_first:
        arrangement = (
            "this is a post-norm block, norm(x + sublayer(x)), but norm_first=True asks for "
            "pre-norm: x = x + attention(norm1(x)), then x = x + feed_forward(norm2(x))"
        )
        shape = "x + sublayer(norm(x))"
    else:
        arrangement = (
            "this is a pre-norm block, x + sublayer(norm(x)), but norm_first=False asks for "
            "post-norm: x = norm1(x + attention(x)), then x = norm2(x + feed_forward(x))"
        )
        shape = "norm(x + sublayer(x))"
    wrong = [
        (arrangement, {"norm_first": not norm_first}),
        (
            f"the residual connection around self-attention is missing: {shape}",
            {"no_residual": ("attention",)},
        ),
        (
            f"the residual connection around the feed-forward sublayer is missing: {shape}",
            {"no_residual": ("feed_forward",)},
        ),
        (
            f"both residual connections are missing: each sublayer is {shape}",
            {"no_residual": ("attention", "feed_forward")},
        ),
        (
            "norm2 is not applied: the feed-forward sublayer has its own LayerNorm, norm2",
            {"second_norm": "none"},
        ),
        (
            "norm1 is used for both sublayers: the feed-forward sublayer's LayerNorm is norm2",
            {"second_norm": "norm1"},
        ),
        (FEED_FORWARD_MISTAKES[0][0], {"activation_after_linear2": True}),
    ]
    if not norm_first:
        wrong.append(
            (
                "the residual is added after the norm: post-norm normalises the sum, "
                "norm1(x + attention(x)), not x + norm1(attention(x))",
                {"residual_after_norm": True},
            )
        )
    else:
        wrong.append(
            (
                "the residual path carries the normalised x: keep the input itself on it, "
                "x + attention(norm1(x)), not norm1(x) + attention(norm1(x))",
                {"residual_from_norm": True},
            )
        )
    if case.activation != "relu":
        wrong.append((FEED_FORWARD_MISTAKES[2][0], {"activation": "relu"}))
    if case.mask is not None:
        wrong.append(
            (
                "the masks are not applied: pass attn_mask=src_mask and "
                "key_padding_mask=src_key_padding_mask to self_attn",
                {"use_masks": False},
            )
        )
    else:
        wrong.append(
            (
                f"self_attn reads the wrong layout: build it with batch_first=batch_first "
                f"({case.batch_first} here), or it attends across the batch instead of the "
                "sequence",
                {"swap_layout": True},
            )
        )
    return wrong


def _check_block(block_cls: BlockCls, norm_first: bool) -> None:
    __tracebackhide__ = True
    what = "TransformerBlock.forward()"
    for seed, case in enumerate(CASES):
        ours, reference, theirs = _setup(block_cls, case, norm_first, seed)
        src, mask, padding = case.inputs(torch.Generator().manual_seed(seed))
        ctx = (
            case.signature(norm_first)
            + ", "
            + describe(src=src, src_mask=mask, src_key_padding_mask=padding)
        )
        masks = {"src_mask": mask, "src_key_padding_mask": padding}
        out = _same_twice(what, ours, {"src": src}, ctx, **masks)
        expected = theirs(src, **masks).detach()  # PyTorch's own path (grad on: no fast path)
        expect_shape(what, out, src.shape, "like src", ctx)
        with torch.no_grad():
            mistakes: list[Mistake] = [
                (text, block_variant(reference, src, mask, padding, **kw))
                for text, kw in block_mistakes(norm_first, case)
            ]
        compare(what, out, expected, mistakes, ctx)


def check_post_norm(block_cls: BlockCls) -> None:
    """Lab 06: with ``norm_first=False`` the block equals nn.TransformerEncoderLayer's."""
    __tracebackhide__ = True
    _check_block(block_cls, norm_first=False)


def check_pre_norm(block_cls: BlockCls) -> None:
    """Lab 06: with ``norm_first=True`` the block equals nn.TransformerEncoderLayer's."""
    __tracebackhide__ = True
    _check_block(block_cls, norm_first=True)
