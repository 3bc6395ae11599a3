"""Lab 08 checks: cross-attention and the decoder block, a drop-in for
``torch.nn.TransformerDecoderLayer``.

* ``check_cross_attention``: the learner's ``cross_attention(attn, x, memory,
  memory_key_padding_mask)``, queries from the target ``x`` and keys and values from the
  encoder's output ``memory``, against ``nn.MultiheadAttention`` with the same weights;
* ``check_decoder_block``: the learner's ``DecoderBlock(d_model, nhead, dim_feedforward=...,
  dropout=..., activation=..., batch_first=..., norm_first=...)`` loads an
  ``nn.TransformerDecoderLayer``'s state dict (random biases and LayerNorm weights) and must
  give its numbers within 1e-5 in eval mode, post- and pre-norm, with a causal ``tgt_mask``
  and a ``memory_key_padding_mask``.

The target and the source have different lengths, so that reading the wrong one shows.
Mistakes are recognised by computing them on purpose with ``transformer.v6_encoder_decoder``
(``transformer_teaching.labs.mistakes.decoder_variant``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from transformer.v1_basic_attention import causal_mask
from transformer.v2_multihead import MultiHeadAttention
from transformer.v6_encoder_decoder import TransformerDecoderLayer
from transformer_teaching.labs.checks import (
    compare,
    describe,
    expect_shape,
    expect_tensor,
    fail,
    load_reference,
    run,
    run_on_copies,
)
from transformer_teaching.labs.mistakes import decoder_variant

LAYERS = (
    "self_attn, multihead_attn (v2's MultiHeadAttention), linear1, linear2, norm1, norm2, norm3"
)
DROPOUT = 0.1  # nn.TransformerDecoderLayer's default: eval mode must switch it off


@dataclass(frozen=True)
class Case:
    d_model: int
    nhead: int
    batch: int
    tgt_len: int
    src_len: int
    activation: str = "relu"
    batch_first: bool = True

    def inputs(self, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """tgt (N, T, E), memory (N, S, E) batch-first; the causal tgt_mask (T, T) and the
        memory padding (N, S), True = blocked; every row keeps its first source position."""
        tgt = torch.randn(self.batch, self.tgt_len, self.d_model, generator=gen)
        memory = torch.randn(self.batch, self.src_len, self.d_model, generator=gen)
        lengths = torch.randint(1, self.src_len + 1, (self.batch,), generator=gen)  # (N,)
        lengths[0] = self.src_len - 2  # at least one source is padded
        padding = torch.arange(self.src_len) >= lengths.unsqueeze(1)  # (N, S)
        return tgt, memory, ~causal_mask(self.tgt_len), padding


CASES = [
    Case(8, 2, 2, 4, 6),
    Case(12, 3, 3, 5, 3, "gelu", False),
    Case(16, 4, 2, 3, 7, "relu", False),
    Case(8, 1, 3, 6, 4, "gelu", True),
]


def randomise(module: nn.Module, seed: int) -> nn.Module:
    """Random biases and LayerNorm weights (PyTorch's zeros and ones hide a swapped norm)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if "norm" in name and name.endswith("weight"):
                parameter.normal_(1.0, 0.5)
            elif name.endswith("bias"):
                parameter.normal_(0.0, 0.5)
    return module.eval()


CROSS_MISTAKES = {
    "keys": "the keys and values come from the target: cross-attention reads the source, "
    "attn(x, memory, memory), with queries from x",
    "causal": "a causal mask is put on cross-attention: every target position may read the "
    "whole source; only the decoder's self-attention is causal",
    "padding": "the memory key-padding mask is forgotten: pass key_padding_mask="
    "memory_key_padding_mask, or padded source positions are read",
}


def check_cross_attention(cross_attention: Callable[..., Tensor]) -> None:
    """Lab 08: ``cross_attention(attn, x, memory, memory_key_padding_mask)`` equals
    ``attn(x, memory, memory, key_padding_mask=...)`` of ``nn.MultiheadAttention``."""
    __tracebackhide__ = True
    what = "cross_attention()"
    for seed, case in enumerate(CASES[:3]):
        attn = randomise(MultiHeadAttention(case.d_model, case.nhead, batch_first=True), seed)
        theirs = nn.MultiheadAttention(case.d_model, case.nhead, batch_first=True).eval()
        theirs.load_state_dict(attn.state_dict())
        x, memory, _, padding = case.inputs(torch.Generator().manual_seed(seed))
        ctx = describe(x=x, memory=memory, memory_key_padding_mask=padding)
        with torch.no_grad():
            result = run(what, cross_attention, attn, x.clone(), memory.clone(), padding,
                         context=ctx)  # fmt: skip
            out = expect_tensor(what, result, ctx)
            expected = theirs(x, memory, memory, key_padding_mask=padding, need_weights=False)[0]
            blocked = torch.ones(case.tgt_len, case.src_len, dtype=torch.bool).triu(1)
            mistakes = [
                (CROSS_MISTAKES["keys"], attn(x, x, x, need_weights=False)[0]),
                (CROSS_MISTAKES["causal"], attn(x, memory, memory, key_padding_mask=padding,
                                                attn_mask=blocked, need_weights=False)[0]),
                (CROSS_MISTAKES["padding"], attn(x, memory, memory, need_weights=False)[0]),
            ]  # fmt: skip
        if tuple(out.shape) == tuple(memory.shape) != tuple(x.shape):
            fail(
                f"{what}: the output has the source's length {case.src_len}, not the target's "
                f"{case.tgt_len}: the queries come from the target x, attn(x, memory, memory)",
                ctx,
            )
        expect_shape(what, out, x.shape, "(batch, tgt_len, d_model), like x", ctx)
        compare(what, out, expected, mistakes, ctx)


def block_mistakes(norm_first: bool) -> list[tuple[str, dict]]:
    arrangement = (
        "this is a post-norm block, norm(x + sublayer(x)), but norm_first=True asks for "
        "pre-norm: x = x + sublayer(norm(x)) for each of the three sublayers"
        if norm_first
        else "this is a pre-norm block, x + sublayer(norm(x)), but norm_first=False asks for "
        "post-norm: x = norm(x + sublayer(x)) for each of the three sublayers"
    )
    return [
        (CROSS_MISTAKES["keys"], {"cross_keys_from_target": True}),
        (CROSS_MISTAKES["causal"], {"causal_cross": True}),
        (CROSS_MISTAKES["padding"], {"use_memory_padding": False}),
        (
            "the target's causal mask is not applied: pass attn_mask=tgt_mask to self_attn, "
            "or each position reads the tokens after it",
            {"use_tgt_mask": False},
        ),
        (arrangement, {"norm_first": not norm_first}),
        (
            "the sublayers are in the wrong order: self-attention first, then cross-attention, "
            "then the feed-forward layer",
            {"cross_first": True},
        ),
        (
            "norm2 is used for the feed-forward sublayer: it has its own LayerNorm, norm3",
            {"third_norm": "norm2"},
        ),
        (
            "the residual connection around cross-attention is missing: x + cross(x), "
            "not cross(x) alone",
            {"no_cross_residual": True},
        ),
    ]


def check_decoder_block(block_cls: Callable[..., nn.Module]) -> None:
    """Lab 08: ``block_cls(...)(tgt, memory, tgt_mask=..., memory_key_padding_mask=...)``
    equals ``nn.TransformerDecoderLayer``'s, post- and pre-norm."""
    __tracebackhide__ = True
    what = "DecoderBlock.forward()"
    for norm_first in (False, True):
        for seed, case in enumerate(CASES):
            kwargs = {"dim_feedforward": 2 * case.d_model, "dropout": DROPOUT,
                      "activation": case.activation, "batch_first": case.batch_first,
                      "norm_first": norm_first}  # fmt: skip
            shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            signature = f"DecoderBlock({case.d_model}, {case.nhead}, {shown})"
            theirs = randomise(nn.TransformerDecoderLayer(case.d_model, case.nhead, **kwargs), seed)
            ours = run(signature, block_cls, case.d_model, case.nhead, context=signature, **kwargs)
            load_reference(ours, theirs.state_dict(), "DecoderBlock", "nn.TransformerDecoderLayer",
                           LAYERS, signature)  # fmt: skip
            reference = TransformerDecoderLayer(
                case.d_model, case.nhead, **{**kwargs, "batch_first": True}
            )
            reference.load_state_dict(theirs.state_dict())
            reference.eval()
            tgt, memory, mask, padding = case.inputs(torch.Generator().manual_seed(seed))
            if not case.batch_first:  # the learner's layout: (seq, batch, d_model)
                tgt_in, memory_in = tgt.transpose(0, 1), memory.transpose(0, 1)
            else:
                tgt_in, memory_in = tgt, memory
            ctx = signature + ", " + describe(
                tgt=tgt_in, memory=memory_in, tgt_mask=mask, memory_key_padding_mask=padding
            )  # fmt: skip
            masks = {"tgt_mask": mask, "memory_key_padding_mask": padding}
            with torch.no_grad():
                out = expect_tensor(what, run_on_copies(
                    what, ours, {"tgt": tgt_in, "memory": memory_in}, context=ctx, **masks
                ), ctx)  # fmt: skip
                expected = theirs(tgt_in, memory_in, **masks)
                mistakes = [
                    (text, decoder_variant(reference, tgt, memory, mask, padding, **kw))
                    for text, kw in block_mistakes(norm_first)
                ]
            if not case.batch_first:
                mistakes = [(text, wrong.transpose(0, 1)) for text, wrong in mistakes]
            expect_shape(what, out, tgt_in.shape, "like tgt", ctx)
            compare(what, out, expected, mistakes, ctx)
