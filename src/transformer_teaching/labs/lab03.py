"""Lab 03 checks: split into heads, merge the heads, and v1's multi-head attention.

The references are ``transformer.v1_basic_attention``'s ``split_heads``, ``merge_heads`` and
``MultiHeadAttention``, whose ``w_q``, ``w_k``, ``w_v``, ``w_o`` weights are copied into the
learner's module so that both compute with the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from transformer.v1_basic_attention import (
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    split_heads,
)
from transformer_teaching.labs.checks import (
    Mistake,
    compare,
    describe,
    expect_pair,
    expect_shape,
    expect_tensor,
    fail,
    random_attend_mask,
    run,
)
from transformer_teaching.labs.mistakes import (
    merge_interleaved,
    merge_without_transpose,
    multihead_variant,
    split_interleaved,
    split_without_transpose,
)

# (batch, seq, num_heads, head_dim)
HEAD_SHAPES = [(2, 5, 3, 4), (1, 4, 2, 4), (3, 6, 4, 4), (2, 3, 6, 1), (2, 7, 2, 3), (1, 1, 4, 2)]

SPLIT_MISTAKES = [
    (
        "split heads without the transpose: reshape to (B, T, H, D) first, then "
        "transpose(1, 2); reshaping straight to (B, H, T, D) mixes positions into heads",
        split_without_transpose,
    ),
    (
        "each head must be one contiguous block of head_dim features: reshape to "
        "(B, T, H, D), not (B, T, D, H)",
        split_interleaved,
    ),
]
MERGE_MISTAKES = [
    (
        "heads are merged in the wrong order: transpose (B, H, T, D) -> (B, T, H, D) "
        "before reshaping to (B, T, H*D)",
        merge_without_transpose,
    ),
    (
        "features are interleaved across heads: transpose to (B, T, H, D), not "
        "(B, T, D, H), before reshaping",
        merge_interleaved,
    ),
]


def _inputs(dtype: torch.dtype) -> list[tuple[Tensor, int]]:
    gen = torch.Generator().manual_seed(3)
    return [(torch.randn(b, t, h * d, generator=gen, dtype=dtype), h) for b, t, h, d in HEAD_SHAPES]


def check_split_heads(split_fn: Callable[[Tensor, int], Tensor]) -> None:
    """Lab 03: ``split_fn(x (B, T, E), num_heads) -> (B, H, T, D)`` like v1's split_heads."""
    __tracebackhide__ = True
    for x, heads in _inputs(torch.float32) + _inputs(torch.float64)[:2]:
        ctx = describe(x=x) + f", num_heads {heads}"
        result = run("split_heads()", split_fn, x, heads, context=ctx)
        result = expect_tensor("split_heads()", result, ctx)  # (B, H, T, D)
        expected = split_heads(x, heads)  # (B, H, T, D)
        B, H, T, D = expected.shape
        if tuple(result.shape) == (B, T, H, D) and T != H:
            fail(
                f"split_heads(): expected shape {(B, H, T, D)} (B, H, T, D), got "
                f"{tuple(result.shape)} (B, T, H, D): transpose(1, 2) so that heads come first",
                ctx,
            )
        expect_shape("split_heads()", result, expected.shape, "(B, H, T, D)", ctx)
        mistakes = [(text, wrong(x, heads)) for text, wrong in SPLIT_MISTAKES]
        compare("split_heads()", result, expected, mistakes, ctx)


def check_merge_heads(merge_fn: Callable[[Tensor], Tensor]) -> None:
    """Lab 03: ``merge_fn(x (B, H, T, D)) -> (B, T, H*D)`` like v1's merge_heads."""
    __tracebackhide__ = True
    for x, heads in _inputs(torch.float32) + _inputs(torch.float64)[:2]:
        split = split_heads(x, heads).contiguous()  # (B, H, T, D), like attention output
        ctx = describe(x=split)
        result = run("merge_heads()", merge_fn, split, context=ctx)
        result = expect_tensor("merge_heads()", result, ctx)  # (B, T, E)
        expected = merge_heads(split)  # (B, T, E)
        expect_shape("merge_heads()", result, expected.shape, "(B, T, H*D)", ctx)
        mistakes = [(text, wrong(split)) for text, wrong in MERGE_MISTAKES]
        compare("merge_heads()", result, expected, mistakes, ctx)


# (d_model, num_heads, batch, L, S, self-attention, mask kind)
MULTIHEAD_CASES = [
    (8, 2, 2, 5, 5, True, None),
    (12, 3, 2, 4, 4, True, "causal"),
    (16, 4, 3, 3, 6, False, "padding"),
    (8, 4, 1, 6, 6, True, "full"),
    (12, 2, 2, 5, 3, False, "full"),
    (6, 3, 2, 6, 6, True, "causal"),
    (16, 2, 2, 1, 4, False, None),
    (10, 5, 3, 4, 7, False, "padding"),
]


def _mask(kind: str | None, B: int, L: int, S: int, gen: torch.Generator) -> Tensor | None:
    """A v1 mask (1 = attend) broadcastable to (B, H, L, S)."""
    if kind is None:
        return None
    if kind == "causal":
        return causal_mask(L)  # (L, L)
    return random_attend_mask((B, 1, 1, S) if kind == "padding" else (B, 1, L, S), gen)


def multihead_mistakes(ref: MultiHeadAttention, q, k, v, mask) -> list[tuple[str, tuple]]:
    """Each common mistake in words, with the (output, weights) it gives."""
    wrong = [
        (SPLIT_MISTAKES[0][0], {"split": split_without_transpose}),
        (MERGE_MISTAKES[0][0], {"merge": merge_without_transpose}),
        ("looks like you forgot to divide the scores by √head_dim", {"divide_by": 1.0}),
        (
            "the scores are divided by √d_model; divide by √head_dim, the size of one head's "
            "query and key (d_model // num_heads)",
            {"divide_by": math.sqrt(ref.d_model)},
        ),
        (
            "the mask is inverted: 0 (False) should mean blocked and 1 (True) attend",
            {"mask_mode": "inverted"},
        ),
        ("the mask is not applied: blocked keys still get weight", {"mask_mode": "ignored"}),
        ("w_q and w_k are swapped: queries come from w_q(query)", {"swap_query_key": True}),
        ("the output projection w_o is missing: return w_o(merged heads)", {"project_out": False}),
    ]
    with torch.no_grad():
        return [(text, multihead_variant(ref, q, k, v, mask, **kw)) for text, kw in wrong]


def _linears(module: nn.Module, d_model: int, ctx: str) -> None:
    __tracebackhide__ = True
    for name in ("w_q", "w_k", "w_v", "w_o"):
        layer = getattr(module, name, None)
        if not isinstance(layer, nn.Linear) or layer.bias is None:
            fail(f"MultiHeadAttention: expected self.{name} = nn.Linear(d_model, d_model)", ctx)
        if tuple(layer.weight.shape) != (d_model, d_model):
            fail(
                f"MultiHeadAttention.{name}: expected nn.Linear({d_model}, {d_model}), got "
                f"weight shape {tuple(layer.weight.shape)}",
                ctx,
            )


def check_multihead(module_cls: Callable[[int, int], nn.Module]) -> None:
    """Lab 03: ``module_cls(d_model, num_heads)`` computes v1's multi-head attention."""
    __tracebackhide__ = True
    fwd = "MultiHeadAttention.forward()"
    for seed, (E, H, B, L, S, self_attn, kind) in enumerate(MULTIHEAD_CASES):
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        ref = MultiHeadAttention(E, H)
        query = torch.randn(B, L, E, generator=gen)  # (B, L, E)
        key = query if self_attn else torch.randn(B, S, E, generator=gen)  # (B, S, E)
        value = query if self_attn else torch.randn(B, S, E, generator=gen)  # (B, S, E)
        mask = _mask(kind, B, L, S, gen)
        ctx = f"d_model {E}, num_heads {H}, " + describe(
            query=query, key=key, value=value, mask=mask
        )
        ours = run(f"MultiHeadAttention({E}, {H})", module_cls, E, H, context=ctx)
        _linears(ours, E, ctx)
        with torch.no_grad():
            for name in ("w_q", "w_k", "w_v", "w_o"):
                getattr(ours, name).load_state_dict(getattr(ref, name).state_dict())
            ref_output, ref_weights = ref(query, key, value, mask)  # (B, L, E), (B, H, L, S)
            result = run(fwd, ours, query.clone(), key.clone(), value.clone(), mask, context=ctx)
        output, weights = expect_pair(fwd, result, "(output, weights)", ctx)
        output = expect_tensor(f"{fwd} output", output, ctx)
        weights = expect_tensor(f"{fwd} weights", weights, ctx)
        if tuple(weights.shape) == (B, L, S):
            fail(
                f"{fwd} weights: expected shape {tuple(ref_weights.shape)} (B, H, L, S), got "
                f"{tuple(weights.shape)}: return every head's weights, not their average",
                ctx,
            )
        expect_shape(f"{fwd} weights", weights, ref_weights.shape, "(B, H, L, S)", ctx)
        expect_shape(f"{fwd} output", output, ref_output.shape, "(B, L, d_model)", ctx)
        mistakes = multihead_mistakes(ref, query, key, value, mask)
        weight_mistakes: list[Mistake] = [(t, w) for t, (_, w) in mistakes]
        output_mistakes: list[Mistake] = [(t, o) for t, (o, _) in mistakes]
        compare(f"{fwd} weights", weights, ref_weights, weight_mistakes, ctx)
        compare(f"{fwd} output", output, ref_output, output_mistakes, ctx)
