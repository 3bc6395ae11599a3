"""Lab 04 checks: v1's multi-head attention matches ``torch.nn.MultiheadAttention``.

Two conventions separate them. ``nn.MultiheadAttention`` packs the q, k and v projections
into ``in_proj_weight`` (3E, E) and ``in_proj_bias`` (3E,), rows in the order q, k, v, and
its bool ``attn_mask`` means True = blocked, while v1's mask means 0 = blocked.
The learner writes ``load_from_torch(ours, theirs)`` and ``to_torch_mask(attend_mask)``; the
milestone check then runs both modules and requires outputs and per-head weights within 1e-5.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from transformer.v1_basic_attention import MultiHeadAttention, causal_mask
from transformer_teaching.labs.checks import (
    TOLERANCE,
    describe,
    error_report,
    expect_shape,
    expect_tensor,
    fail,
    matches,
    max_abs_error,
    random_attend_mask,
    run,
)

LoadFn = Callable[[nn.Module, nn.MultiheadAttention], object]
MaskFn = Callable[[Tensor], Tensor]

ROWS = ("query", "key", "value")
NAMES = ("v1 module", "nn.MultiheadAttention")


def make_torch_attention(embed_dim: int, num_heads: int, seed: int) -> nn.MultiheadAttention:
    """``nn.MultiheadAttention(batch_first=True)`` with random biases (PyTorch starts them at 0)."""
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True).eval()
    with torch.no_grad():
        theirs.in_proj_bias.normal_()
        theirs.out_proj.bias.normal_()
    return theirs


def expected_parameters(theirs: nn.MultiheadAttention) -> dict[str, Tensor]:
    """Where each v1 parameter comes from: in_proj rows [0:E] = q, [E:2E] = k, [2E:3E] = v."""
    w_q, w_k, w_v = theirs.in_proj_weight.detach().chunk(3)  # 3 x (E, E)
    b_q, b_k, b_v = theirs.in_proj_bias.detach().chunk(3)  # 3 x (E,)
    return {
        "w_q.weight": w_q,
        "w_k.weight": w_k,
        "w_v.weight": w_v,
        "w_o.weight": theirs.out_proj.weight.detach(),
        "w_q.bias": b_q,
        "w_k.bias": b_k,
        "w_v.bias": b_v,
        "w_o.bias": theirs.out_proj.bias.detach(),
    }


def _source(name: str, embed_dim: int) -> str:
    layer, kind = name.split(".")
    if layer == "w_o":
        return f"out_proj.{kind}"
    i = "qkv".index(layer[-1])
    return f"in_proj_{kind}[{i * embed_dim}:{(i + 1) * embed_dim}] (the {ROWS[i]} rows)"


def parameter_problem(ours: nn.Module, theirs: nn.MultiheadAttention, before: dict) -> str | None:
    """The first v1 parameter that does not hold its nn.MultiheadAttention value, explained."""
    E = theirs.embed_dim
    expected = expected_parameters(theirs)
    state = ours.state_dict()
    tol = TOLERANCE[torch.float32]
    for name, want in expected.items():
        if name not in state:
            return f"{name} is missing: the module needs nn.Linear layers w_q, w_k, w_v, w_o"
        got = state[name]
        if got.shape != want.shape:
            return f"{name}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
        if matches(got, want, tol):
            continue
        report = f"{name}: {error_report(got, want)}"
        layer, kind = name.split(".")
        if layer != "w_o":
            for other_name in (f"w_{r}.{kind}" for r in "qkv"):
                if matches(got, expected[other_name], tol):
                    return (
                        f"q, k and v rows of in_proj_{kind} are in the wrong order: your {name} "
                        f"holds {_source(other_name, E)}; in_proj_{kind} stacks q, k, v, "
                        f"so w_q gets [0:{E}], w_k [{E}:{2 * E}], w_v [{2 * E}:{3 * E}]"
                        f"\n  {report}"
                    )
        if kind == "weight" and matches(got, want.T, tol):
            return (
                f"{name} is transposed: nn.Linear.weight and {_source(name, E)} are both "
                f"(out_features, in_features), so copy them without .T\n  {report}"
            )
        if matches(got, before[name], 0.0):
            return (
                f"{name} was not copied from {_source(name, E)}: copy into ours in place, "
                f"e.g. ours.{name}.copy_(...) inside torch.no_grad()\n  {report}"
            )
        return f"{name} does not equal {_source(name, E)}\n  {report}"
    return None


def mask_problem(attend_mask: Tensor, attn_mask: object) -> str | None:
    """What is wrong with ``attn_mask`` as the conversion of ``attend_mask``, or None."""
    if not isinstance(attn_mask, Tensor):
        return f"expected a torch.Tensor, got {type(attn_mask).__name__}"
    if attn_mask.shape != attend_mask.shape:
        want, got = tuple(attend_mask.shape), tuple(attn_mask.shape)
        return f"expected shape {want} like v1's mask, got {got}"
    if attn_mask.dtype != torch.bool:
        return (
            f"expected dtype torch.bool (True = blocked), got {attn_mask.dtype}: "
            "nn.MultiheadAttention adds a floating attn_mask to the scores instead of blocking"
        )
    expected = attend_mask == 0  # (L, S) True = blocked
    if matches(attn_mask, expected, 0.0):
        return None
    report = f"attn_mask: {error_report(attn_mask, expected)}"
    if matches(attn_mask, attend_mask != 0, 0.0):
        return (
            "the mask convention was not converted: v1 blocks where the mask is 0, "
            "nn.MultiheadAttention blocks where attn_mask is True; return attend_mask == 0"
            f"\n  {report}"
        )
    return f"differs from attend_mask == 0\n  {report}"


def _attend_masks() -> list[Tensor]:
    gen = torch.Generator().manual_seed(4)
    return [
        random_attend_mask((4, 6), gen),  # bool
        causal_mask(5).long(),  # 0/1 integers
        random_attend_mask((3, 7), gen).float(),  # 0./1. floats
        causal_mask(6),
    ]


def check_to_torch_mask(mask_fn: MaskFn) -> None:
    """Lab 04: ``mask_fn(attend_mask (L, S), 0 = blocked) -> bool attn_mask, True = blocked``."""
    __tracebackhide__ = True
    for attend_mask in _attend_masks():
        ctx = describe(attend_mask=attend_mask)
        problem = mask_problem(
            attend_mask, run("to_torch_mask()", mask_fn, attend_mask, context=ctx)
        )
        if problem:
            fail(f"to_torch_mask(): {problem}", ctx)


def _snapshot(module: nn.Module) -> dict[str, Tensor]:
    return {name: t.detach().clone() for name, t in module.state_dict().items()}


def check_load_from_torch(load_fn: LoadFn) -> None:
    """Lab 04: ``load_fn(ours, theirs)`` copies nn.MultiheadAttention's weights into ``ours``."""
    __tracebackhide__ = True
    for seed, (E, H) in enumerate([(8, 2), (12, 3), (6, 1)]):
        theirs = make_torch_attention(E, H, seed)
        ours = MultiHeadAttention(E, H)
        before = _snapshot(ours)
        ctx = f"ours = MultiHeadAttention({E}, {H}), theirs = nn.MultiheadAttention({E}, {H})"
        run("load_from_torch()", load_fn, ours, theirs, context=ctx)
        problem = parameter_problem(ours, theirs, before)
        if problem:
            fail(f"load_from_torch(): {problem}", ctx)


# (embed_dim, num_heads, batch, L, S, self-attention, mask kind)
MATCH_CASES = [
    (8, 2, 2, 5, 7, False, "random"),
    (12, 3, 2, 6, 6, True, "causal"),
    (16, 4, 3, 4, 4, True, None),
    (6, 1, 1, 3, 5, False, "random"),
    (8, 4, 2, 7, 7, False, "causal"),
    (10, 2, 2, 1, 3, False, "random"),
]


def check_matches_torch(
    load_fn: LoadFn, mask_fn: MaskFn, module_cls: Callable[[int, int], nn.Module] | None = None
) -> None:
    """Lab 04 milestone: with the learner's mapping and mask conversion, v1's module
    (v1's ``MultiHeadAttention``, or ``module_cls``) equals ``nn.MultiheadAttention``:
    outputs and per-head weights (``average_attn_weights=False``) within 1e-5."""
    __tracebackhide__ = True
    module_cls = module_cls or MultiHeadAttention
    tol = TOLERANCE[torch.float32]
    for seed, (E, H, B, L, S, self_attn, kind) in enumerate(MATCH_CASES):
        gen = torch.Generator().manual_seed(seed)
        query = torch.randn(B, L, E, generator=gen)  # (B, L, E)
        key = query if self_attn else torch.randn(B, S, E, generator=gen)  # (B, S, E)
        value = query if self_attn else torch.randn(B, S, E, generator=gen)  # (B, S, E)
        attend_mask = {"causal": causal_mask(L), "random": random_attend_mask((L, S), gen)}.get(
            kind
        )
        ctx = f"embed_dim {E}, num_heads {H}, " + describe(
            query=query, key=key, value=value, attend_mask=attend_mask
        )
        theirs = make_torch_attention(E, H, seed)
        ours = run(f"module_cls({E}, {H})", module_cls, E, H, context=ctx)
        before = _snapshot(ours)
        run("load_from_torch()", load_fn, ours, theirs, context=ctx)
        attn_mask = None
        if attend_mask is not None:
            attn_mask = run("to_torch_mask()", mask_fn, attend_mask, context=ctx)
            attn_mask = expect_tensor("to_torch_mask()", attn_mask, ctx)
        with torch.no_grad():
            ref_output, ref_weights = run(
                "nn.MultiheadAttention with your to_torch_mask() mask",
                theirs,
                query,
                key,
                value,
                attn_mask=attn_mask,
                need_weights=True,
                average_attn_weights=False,
                context=ctx,
            )  # (B, L, E), (B, H, L, S)
            output, weights = run("v1's module", ours, query, key, value, attend_mask, context=ctx)
        expect_shape("v1 module weights", weights, ref_weights.shape, "(B, H, L, S)", ctx)
        expect_shape("v1 module output", output, ref_output.shape, "(B, L, E)", ctx)
        pairs = (("weights", weights, ref_weights), ("output", output, ref_output))
        for what, yours, expected in pairs:
            if max_abs_error(yours, expected)[0] <= tol:
                continue
            mask_issue = None if attend_mask is None else mask_problem(attend_mask, attn_mask)
            param_issue = parameter_problem(ours, theirs, before)
            if mask_issue:
                reason = f"to_torch_mask(): {mask_issue}"
            elif param_issue:
                reason = f"load_from_torch(): {param_issue}"
            else:
                reason = "they differ, though the copied weights and the converted mask look right"
            fail(
                f"milestone: {what} do not match nn.MultiheadAttention's: {reason}\n"
                f"  {what}: {error_report(yours, expected, NAMES)}",
                ctx,
            )
