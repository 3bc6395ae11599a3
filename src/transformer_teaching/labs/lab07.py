"""Lab 07 checks: rotary position embeddings (RoPE) and RMSNorm, two of v7_modern's switches.

* ``check_rope_frequencies(fn)``: ``fn(head_dim, theta)`` is θᵢ = theta^(-2i/head_dim) for
  each pair i, (head_dim // 2,), like ``transformer.v7_modern.rope_frequencies``;
* ``check_rotate_half(fn)``: ``fn(x)`` is the half-split pairing's 90° turn,
  cat(-x₂, x₁) on the two halves of the last axis, like v7's ``rotate_half``;
* ``check_rope(fn)``: ``fn(x, theta=...)`` rotates x (..., seq_len, head_dim) at positions
  0, 1, ..., seq_len - 1, like v7's ``RotaryEmbedding`` and ``apply_rope``;
* ``check_rmsnorm(module_cls)``: ``module_cls(dim, eps=...)``, with a random weight copied
  in, equals ``torch.nn.RMSNorm(dim, eps=eps)``.

Everything is float32 and must match to 1e-5. Mistakes are recognised by computing them on
purpose (``transformer_teaching.labs.mistakes``: ``frequencies_variant``, ``rotate_variant``,
``rope_variant``, ``rmsnorm_variant``). Some cases use a large ε (1e-2, 1e-1) on inputs of
small norm, so that ε inside or outside the square root makes a visible difference.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from transformer.v7_modern import RotaryEmbedding, apply_rope, rope_frequencies, rotate_half
from transformer_teaching.labs.checks import (
    Mistake,
    compare,
    describe,
    expect_shape,
    expect_tensor,
    fail,
    run,
    run_on_copies,
)
from transformer_teaching.labs.mistakes import (
    frequencies_variant,
    rmsnorm_variant,
    rope_variant,
    rotate_variant,
)

DEFAULT_THETA = 10000.0
DEFAULT_EPS = 1e-6

# ---- RoPE: the frequencies, the turn, the rotation ----

INTERLEAVED = (
    "the pairing is interleaved (feature 2i with 2i+1, as in the RoFormer paper and Meta's "
    "original Llama code): this lab uses the half-split pairing of Hugging Face's Llama, "
    "feature i with feature i + head_dim/2, rotate_half(x) = cat(-x[..., D/2:], x[..., :D/2])"
)
WRONG_WAY = (
    "the rotation goes the wrong way (by -m·θᵢ): the turn is (x₁, x₂) -> (-x₂, x₁), "
    "rotate_half(x) = cat(-x₂, x₁), not cat(x₂, -x₁); then rope(x) = x·cos + rotate_half(x)·sin"
)
FREQUENCY_MISTAKES: list[tuple[str, str]] = [
    (
        "the frequencies are θ^(-i/D): pair i turns at θ^(-2i/D), with 2i = 0, 2, 4, ... the "
        "even feature index, torch.arange(0, head_dim, 2) / head_dim",
        "-i/D",
    ),
    (
        "the frequencies grow, θ^(+2i/D): they shrink, θᵢ = θ^(-2i/D) = 1 / θ^(2i/D), so "
        "pair 0 turns fastest (1 radian per position)",
        "+2i/D",
    ),
    ("the exponent is not divided by head_dim: θᵢ = θ^(-2i/head_dim), not θ^(-2i)", "-2i"),
]


def _ignored_theta(theta: float) -> str:
    return (
        f"the theta argument is ignored: θᵢ = theta^(-2i/head_dim) with the theta passed in "
        f"(here {theta:g}), not always {DEFAULT_THETA:g}"
    )


def frequency_mistakes(head_dim: int, theta: float) -> list[Mistake]:
    """Each common mistake of the frequencies in words, with the (head_dim // 2,) it gives."""
    wrong = [
        (text, frequencies_variant(head_dim, theta, exponent=exponent))
        for text, exponent in FREQUENCY_MISTAKES
    ]
    if theta != DEFAULT_THETA:
        wrong.append((_ignored_theta(theta), frequencies_variant(head_dim, DEFAULT_THETA)))
    return [(text, freqs.float()) for text, freqs in wrong]


# (head_dim, theta): Llama's 10000 first, Llama 3's 500000, a small theta, D/2 odd, D = 2
FREQUENCY_CASES = [(8, 10000.0), (64, 10000.0), (16, 500000.0), (6, 10000.0), (32, 100.0), (2, 1e4)]


def check_rope_frequencies(frequencies_fn: Callable[[int, float], Tensor]) -> None:
    """Lab 07: ``frequencies_fn(head_dim, theta)`` is θᵢ = theta^(-2i/head_dim), i < D/2."""
    __tracebackhide__ = True
    what = "rope_frequencies()"
    for head_dim, theta in FREQUENCY_CASES:
        ctx = f"head_dim {head_dim}, theta {theta:g}"
        freqs = run(what, frequencies_fn, head_dim, theta, context=ctx)
        freqs = expect_tensor(what, freqs, ctx)  # (D/2,)
        if tuple(freqs.shape) == (head_dim,) and head_dim > 2:
            fail(
                f"{what}: expected shape ({head_dim // 2},) (head_dim // 2,), got ({head_dim},): "
                "one frequency per pair of features, 2i = 0, 2, ..., head_dim - 2, "
                "torch.arange(0, head_dim, 2)",
                ctx,
            )
        expect_shape(what, freqs, (head_dim // 2,), "(head_dim // 2,)", ctx)
        if not freqs.dtype.is_floating_point:
            fail(f"{what}: expected floating-point frequencies, got dtype {freqs.dtype}", ctx)
        expected = rope_frequencies(head_dim, theta)  # (D/2,)
        compare(what, freqs.float(), expected, frequency_mistakes(head_dim, theta), ctx)


ROTATE_MISTAKES: list[tuple[str, dict]] = [
    (
        "rotate_half pairs feature 2i with 2i+1 (interleaved): here the pairs are i and "
        "i + D/2, so rotate_half(x) = cat(-x[..., D/2:], x[..., :D/2])",
        {"pairing": "interleaved"},
    ),
    (
        "the turn goes the wrong way: (x₁, x₂) -> (-x₂, x₁), i.e. cat(-x₂, x₁), not cat(x₂, -x₁)",
        {"sign": -1},
    ),
    ("the minus sign is missing: rotate_half(x) = cat(-x₂, x₁), not cat(x₂, x₁)", {"sign": 0}),
]

# x's shapes (..., D): 4-D like q and k, 2-D, 1-D, D = 2 (one pair: both pairings agree)
ROTATE_SHAPES = [(2, 3, 5, 8), (4, 6), (16,), (1, 7, 12), (2, 2, 3, 2)]


def check_rotate_half(rotate_fn: Callable[[Tensor], Tensor]) -> None:
    """Lab 07: ``rotate_fn(x)`` is cat(-x₂, x₁) for the halves x₁, x₂ of x's last axis."""
    __tracebackhide__ = True
    what = "rotate_half()"
    for seed, shape in enumerate(ROTATE_SHAPES):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))  # (..., D)
        ctx = describe(x=x)
        out = run_on_copies(what, rotate_fn, {"x": x}, context=ctx)
        out = expect_tensor(what, out, ctx)  # (..., D)
        expect_shape(what, out, x.shape, "like x", ctx)
        mistakes = [(text, rotate_variant(x, **kw)) for text, kw in ROTATE_MISTAKES]
        compare(what, out, rotate_half(x), mistakes, ctx)


def rope_mistakes(x: Tensor, theta: float) -> list[Mistake]:
    """x (..., T, D) -> each common mistake of RoPE in words, with the result it gives."""
    wrong: list[tuple[str, dict]] = [
        (INTERLEAVED, {"pairing": "interleaved"}),
        (
            "rotate_half turns the interleaved pairs (2i, 2i+1) while the cos and sin tables are "
            "laid out half-split: here the pairs are features i and i + head_dim/2, "
            "rotate_half(x) = cat(-x[..., D/2:], x[..., :D/2])",
            {"pairing": "interleaved", "table": "half-split"},
        ),
        (
            "the angle table is interleaved (each angle repeated in place, θ₀ θ₀ θ₁ θ₁ ...) but "
            "rotate_half pairs feature i with i + head_dim/2: repeat the angles as two halves, "
            "torch.cat([angles, angles], dim=-1), so that features i and i + D/2 share one",
            {"table": "interleaved"},
        ),
        (
            "positions start at 1: the first position is 0 (torch.arange(seq_len)), so the "
            "first row of x is not rotated (cos 0 = 1, sin 0 = 0)",
            {"first_position": 1},
        ),
        *[(text, {"exponent": exponent}) for text, exponent in FREQUENCY_MISTAKES],
        (WRONG_WAY, {"sign": -1}),
    ]
    mistakes = [(text, rope_variant(x, theta, **kw)) for text, kw in wrong]
    if theta != DEFAULT_THETA:
        mistakes.append((_ignored_theta(theta), rope_variant(x, DEFAULT_THETA)))
    return mistakes


ROPE_HINT = (
    "x is (..., seq_len, head_dim): the positions run along dim -2 (seq_len = x.shape[-2]), "
    "and the angles (seq_len, head_dim // 2) are repeated for both halves, "
    "torch.cat([angles, angles], dim=-1), to (seq_len, head_dim)"
)

# (x's shape (..., T, D), theta): (B, H, T, D) with H != T, a 3-D x, D = 2, one position
ROPE_CASES = [
    ((2, 3, 5, 8), 10000.0),
    ((1, 2, 7, 16), 10000.0),
    ((2, 6, 12), 500000.0),
    ((3, 1, 9, 4), 100.0),
    ((2, 2, 4, 2), 10000.0),
    ((1, 1, 1, 8), 10000.0),
]


def check_rope(rope_fn: Callable[..., Tensor]) -> None:
    """Lab 07: ``rope_fn(x, theta=theta)`` is x (..., T, D) rotated by RoPE at positions 0..T-1,
    half-split pairing, like v7's ``apply_rope(x, *RotaryEmbedding(D, theta)(positions))``."""
    __tracebackhide__ = True
    what = "rope()"
    for seed, (shape, theta) in enumerate(ROPE_CASES):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))  # (..., T, D)
        ctx = f"theta {theta:g}, " + describe(x=x)
        out = run_on_copies(what, rope_fn, {"x": x}, context=ctx, crash_hint=ROPE_HINT, theta=theta)
        out = expect_tensor(what, out, ctx)  # (..., T, D)
        expect_shape(what, out, x.shape, "like x", ctx)
        if out.dtype != x.dtype:
            fail(
                f"{what}: expected dtype {x.dtype} like x, got {out.dtype}: build the angles in "
                "float32, or return the result .to(x.dtype)",
                ctx,
            )
        seq_len, head_dim = shape[-2:]
        cos, sin = RotaryEmbedding(head_dim, theta)(torch.arange(seq_len), x.dtype)  # (T, D)
        compare(what, out, apply_rope(x, cos, sin), rope_mistakes(x, theta), ctx)


# ---- RMSNorm ----


def rmsnorm_mistakes(x: Tensor, weight: Tensor, eps: float) -> list[Mistake]:
    """x (..., dim) -> each common mistake of RMSNorm in words, with the output it gives."""
    wrong: list[tuple[str, dict]] = [
        (
            "ε is added outside the square root: RMSNorm divides by √(mean(x²) + ε), not by "
            "√mean(x²) + ε; x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)",
            {"eps_outside": True},
        ),
        (
            "this is LayerNorm: RMSNorm does not subtract the mean, it divides x itself by its "
            "root mean square, x / √(mean(x²) + ε) · weight",
            {"centre": "layernorm"},
        ),
        (
            "the mean is subtracted from x, as in LayerNorm: RMSNorm scales x itself, "
            "x / √(mean(x²) + ε) · weight",
            {"centre": "numerator"},
        ),
        (
            "the root of the sum of squares is used: RMSNorm divides by the root of the mean, "
            "√(mean(x²) + ε) = √(sum(x²) / dim + ε)",
            {"reduce": "sum"},
        ),
        (
            "the mean of x² is taken over the whole tensor: each vector is normalised on its "
            "own, x.pow(2).mean(dim=-1, keepdim=True)",
            {"reduce": "all"},
        ),
        (
            "the weight is not applied: multiply the normalised x by self.weight",
            {"use_weight": False},
        ),
    ]
    mistakes = [(text, rmsnorm_variant(x, weight, eps, **kw)) for text, kw in wrong]
    if eps != DEFAULT_EPS:
        mistakes.append(
            (
                f"the eps argument is ignored: use the eps passed in (here {eps:g}), not always "
                f"{DEFAULT_EPS:g}",
                rmsnorm_variant(x, weight, DEFAULT_EPS),
            )
        )
    return mistakes


RMSNORM_HINT = (
    "take the mean over the last axis with keepdim=True, x.pow(2).mean(dim=-1, keepdim=True), "
    "so that the (..., 1) root mean square broadcasts against x (..., dim)"
)

# (dim, eps, x's shape, scale, offset): x = randn · scale + offset. A large ε on inputs of
# small norm first, where ε inside or outside the root differs; then 1-D and 4-D inputs.
RMSNORM_CASES = [
    (8, 1e-2, (2, 5, 8), 0.1, 0.0),
    (16, 1e-6, (3, 4, 16), 1.0, 0.5),
    (6, 1e-1, (6,), 0.3, 0.0),
    (32, 1e-5, (2, 2, 3, 32), 2.0, 1.0),
    (12, 1e-2, (4, 12), 0.05, 0.02),
]


def _parameters(module: object, dim: int, what: str, ctx: str) -> nn.Parameter:
    """The learner's ``weight``: the only parameter, (dim,), starting at 1."""
    __tracebackhide__ = True
    if not isinstance(module, nn.Module):
        fail(f"{what}: expected an nn.Module, got {type(module).__name__}", ctx)
    weight = getattr(module, "weight", None)
    if not isinstance(weight, nn.Parameter):
        got = type(weight).__name__ if weight is not None else "no attribute weight"
        fail(
            f"{what}: expected self.weight = nn.Parameter(torch.ones(dim)), a trainable gain, "
            f"got {got}",
            ctx,
        )
    names = [name for name, _ in module.named_parameters()]
    if names != ["weight"]:
        fail(
            f"{what}: expected one parameter, weight ({dim},), got {names}: RMSNorm has no bias "
            "and no LayerNorm inside",
            ctx,
        )
    expect_shape(f"{what}.weight", weight, (dim,), "(dim,)", ctx)
    if not torch.equal(weight.detach().float(), torch.ones(dim)):
        fail(f"{what}.weight: expected to start at 1, nn.Parameter(torch.ones(dim))", ctx)
    return weight


def check_rmsnorm(module_cls: Callable[..., nn.Module]) -> None:
    """Lab 07: ``module_cls(dim, eps=eps)``, with a random ``weight`` copied in, computes
    x / √(mean(x², dim=-1) + eps) · weight like ``torch.nn.RMSNorm(dim, eps=eps)``."""
    __tracebackhide__ = True
    for seed, (dim, eps, shape, scale, offset) in enumerate(RMSNORM_CASES):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(shape, generator=gen) * scale + offset  # (..., dim)
        theirs = nn.RMSNorm(dim, eps=eps)
        with torch.no_grad():
            theirs.weight.normal_(1.0, 0.5, generator=gen)  # ones would hide a missing weight
        what = f"RMSNorm({dim}, eps={eps:g})"
        ctx = f"dim {dim}, eps {eps:g}, " + describe(x=x) + ", weight random"
        ours = run(what, module_cls, dim, context=ctx, eps=eps)
        weight = _parameters(ours, dim, what, ctx)
        fwd = f"{what}.forward()"
        with torch.no_grad():
            weight.copy_(theirs.weight)
            out = run_on_copies(fwd, ours, {"x": x}, context=ctx, crash_hint=RMSNORM_HINT)
            expected = theirs(x)  # (..., dim)
        out = expect_tensor(fwd, out, ctx)  # (..., dim)
        expect_shape(fwd, out, x.shape, "like x", ctx)
        if out.dtype != x.dtype:
            fail(f"{fwd}: expected dtype {x.dtype} like x, got {out.dtype}", ctx)
        compare(fwd, out, expected, rmsnorm_mistakes(x, theirs.weight.detach(), eps), ctx)
