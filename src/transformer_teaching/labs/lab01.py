"""Lab 01 checks: scaled dot-product attention, softmax(QKᵀ/√d_k)V, with v1's mask (1 = attend).

``check_attention(attention)`` runs the learner's ``attention(query, key, value, mask)`` on
3-D and 4-D inputs, with and without masks, in float32 and float64, against
``transformer.v1_basic_attention.attention``, and names the mistake when they differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from transformer.v1_basic_attention import attention, causal_mask
from transformer_teaching.labs.checks import (
    Mistake,
    compare,
    describe,
    expect_pair,
    expect_shape,
    expect_tensor,
    fail,
    random_attend_mask,
    run_on_copies,
)
from transformer_teaching.labs.mistakes import attention_variant

AttentionFn = Callable[..., tuple[Tensor, Tensor]]


@dataclass
class AttentionCase:
    query: Tensor  # (..., L, d_k)
    key: Tensor  # (..., S, d_k)
    value: Tensor  # (..., S, d_v)
    mask: Tensor | None  # v1's convention (0 = blocked), broadcastable to (..., L, S)

    @property
    def context(self) -> str:
        return describe(query=self.query, key=self.key, value=self.value, mask=self.mask)


# (leading dims, L, S, d_k, d_v, mask kind): 3-D and 4-D, every mask layout and dtype
SHAPES = [
    ((2,), 4, 4, 8, 8, None),
    ((3,), 5, 7, 16, 4, "bool"),
    ((2, 3), 4, 6, 8, 5, "int"),
    ((2, 2), 5, 5, 4, 4, "causal"),
    ((1,), 1, 6, 4, 3, "float"),
    ((2, 3), 3, 5, 16, 8, "padding"),
    ((2,), 6, 3, 2, 6, "full"),
    ((2, 4), 6, 6, 32, 8, "causal"),
    ((3,), 6, 6, 9, 9, None),
    ((1, 2), 7, 4, 12, 6, "bool"),
    ((2,), 3, 8, 6, 2, "padding"),
    ((2, 1), 5, 5, 16, 16, "full"),
]


def _mask(kind: str, lead: tuple[int, ...], L: int, S: int, gen: torch.Generator) -> Tensor:
    """A v1 mask (1 = attend) of the given kind, layout and dtype."""
    if kind == "causal":
        return causal_mask(L)  # (L, L) bool
    shape = {
        "padding": (lead[0], *[1] * len(lead), S),  # (B, 1, S) or (B, 1, 1, S)
        "full": (*lead, L, S),
    }.get(kind, (L, S))
    dtype = {"int": torch.long, "float": torch.float32}.get(kind, torch.bool)
    return random_attend_mask(shape, gen).to(dtype)


def attention_cases(dtype: torch.dtype = torch.float32) -> list[AttentionCase]:
    cases = []
    for seed, (lead, L, S, d_k, d_v, kind) in enumerate(SHAPES):
        gen = torch.Generator().manual_seed(seed)
        query = torch.randn(*lead, L, d_k, generator=gen, dtype=dtype)
        key = torch.randn(*lead, S, d_k, generator=gen, dtype=dtype)
        value = torch.randn(*lead, S, d_v, generator=gen, dtype=dtype)
        mask = None if kind is None else _mask(kind, lead, L, S, gen)
        cases.append(AttentionCase(query, key, value, mask))
    return cases


def attention_mistakes(case: AttentionCase) -> list[tuple[str, tuple[Tensor, Tensor]]]:
    """Each common mistake in words, with the (output, weights) it gives on ``case``."""
    d_k, d_v = case.query.shape[-1], case.value.shape[-1]
    wrong = [
        ("looks like you forgot to divide the scores by √d_k", {"divide_by": 1.0}),
        ("looks like you divided the scores by d_k instead of √d_k", {"divide_by": d_k}),
        (
            "looks like you multiplied the scores by √d_k instead of dividing by it",
            {"divide_by": 1 / math.sqrt(d_k)},
        ),
        (
            "softmax is taken over the wrong dimension (queries instead of keys): use dim=-1, "
            "so that each query's weights over the keys sum to 1",
            {"softmax_dim": -2},
        ),
        (
            "the mask is inverted: 0 (False) should mean blocked and 1 (True) attend, "
            "as in scores.masked_fill(mask == 0, float('-inf'))",
            {"mask_mode": "inverted"},
        ),
        (
            "the mask is not applied: blocked keys still get weight; "
            "use scores.masked_fill(mask == 0, float('-inf')) before the softmax",
            {"mask_mode": "ignored"},
        ),
        (
            "blocked scores are set to 0 instead of -inf: exp(0) = 1, so blocked keys still "
            "get weight",
            {"mask_mode": "zero_fill"},
        ),
        (
            "the mask is applied after the softmax: mask the scores before the softmax, so "
            "that each row's weights still sum to 1",
            {"mask_mode": "after_softmax"},
        ),
    ]
    if d_v != d_k:
        wrong.insert(1, (
            f"looks like you divided the scores by √d_v = √{d_v} instead of √d_k = √{d_k}: the "
            "scale belongs to the query-key dot product, whose length is d_k = query.size(-1)",
            {"divide_by": math.sqrt(d_v)},
        ))  # fmt: skip
    q, k, v, m = case.query, case.key, case.value, case.mask
    return [(text, attention_variant(q, k, v, m, **kwargs)) for text, kwargs in wrong]


def check_attention_case(attention_fn: AttentionFn, case: AttentionCase) -> None:
    """Raise LabCheckFailure unless ``attention_fn`` gives v1's (output, weights) on ``case``."""
    __tracebackhide__ = True
    ctx = case.context
    ref_output, ref_weights = attention(case.query, case.key, case.value, case.mask)
    inputs = {"query": case.query, "key": case.key, "value": case.value, "mask": case.mask}
    hint = (
        "with 4-D inputs (batch, heads, seq, d_k), key.transpose(1, 2) swaps the head and "
        "sequence axes; swap the last two instead: key.transpose(-2, -1)"
        if case.query.dim() == 4
        else ""
    )
    result = run_on_copies("attention()", attention_fn, inputs, context=ctx, crash_hint=hint)
    output, weights = expect_pair("attention()", result, "(output, weights)", ctx)
    output = expect_tensor("attention() output", output, ctx)
    weights = expect_tensor("attention() weights", weights, ctx)
    if output.shape == ref_weights.shape != weights.shape == ref_output.shape:
        fail("attention(): you returned (weights, output); return (output, weights)", ctx)
    lead = "(..., L, S) = one row of weights per query"
    L, S = ref_weights.shape[-2:]
    if weights.shape == (*ref_weights.shape[:-2], S, L) and L != S:
        fail(
            f"attention() weights: expected shape {tuple(ref_weights.shape)} {lead}, got "
            f"{tuple(weights.shape)}: rows should be queries and columns keys (Q @ Kᵀ, not K @ Qᵀ)",
            ctx,
        )
    expect_shape("attention() weights", weights, ref_weights.shape, lead, ctx)
    expect_shape("attention() output", output, ref_output.shape, "(..., L, d_v)", ctx)
    for name, t in (("output", output), ("weights", weights)):
        if t.dtype != case.query.dtype:
            fail(
                f"attention() {name}: expected dtype {case.query.dtype} like query, got "
                f"{t.dtype}; do not hard-code a dtype",
                ctx,
            )
    mistakes = attention_mistakes(case)
    compare("attention() weights", weights, ref_weights, [(t, w) for t, (_, w) in mistakes], ctx)
    output_mistakes: list[Mistake] = [(t, o) for t, (o, _) in mistakes]
    compare("attention() output", output, ref_output, output_mistakes, ctx)


def check_attention(attention_fn: AttentionFn) -> None:
    """Lab 01: ``attention_fn(query, key, value, mask=None) -> (output, weights)``."""
    __tracebackhide__ = True
    for case in attention_cases(torch.float32) + attention_cases(torch.float64)[:4]:
        check_attention_case(attention_fn, case)
