"""Lab 10 checks: attention that reads the keys in blocks, and one step of cached decoding.

* ``check_online_softmax_attention(fn)``: ``fn(q, k, v, block_size=...)`` is
  softmax(q kᵀ / √D) v (non-causal, no mask) for q (B, H, T_q, D), k (B, H, T_k, D) and
  v (B, H, T_k, D_v), computed with FlashAttention's online softmax over blocks of
  ``block_size`` keys. It equals ``torch.nn.functional.scaled_dot_product_attention`` within
  1e-5, on block sizes that do and do not divide T_k and on scores past float32's exp range;
  and while it runs (watched with a ``TorchFunctionMode``) no tensor holds the scores of all
  the keys, (..., T_q, T_k), and no attention call reads more than ``block_size`` keys;
* ``check_cached_decode_step(fn)``: ``fn(x_new, cache_k, cache_v, w_q, w_k, w_v,
  position=...)`` is one step of single-head causal self-attention with RoPE and a
  key/value cache. Step by step, from an empty cache and from one a prompt filled, each
  output equals full causal attention over the whole prefix (SDPA with ``is_causal=True``,
  queries and keys rotated by ``transformer.v7_modern``'s RoPE) and each returned cache
  holds the rotated keys and the values of every token so far.

Mistakes are recognised by computing them on purpose (``mistakes.online_variant``, and
``decode_mistakes`` here).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from transformer._checks import shape_str
from transformer.v7_modern import RotaryEmbedding, apply_rope
from transformer_teaching.labs.checks import (
    Mistake,
    compare,
    describe,
    expect_shape,
    expect_tensor,
    fail,
    run_on_copies,
)
from transformer_teaching.labs.mistakes import online_variant

# ---- online softmax: softmax(q kᵀ / √D) v, one block of keys at a time ----

EXP_LIMIT = 88.7  # exp(s) is inf in float32 above this

ONLINE_MISTAKES: list[tuple[str, dict]] = [
    (
        "the old sums are not rescaled when the running max grows: before adding a block, "
        "multiply the running sum l and the running weighted sum of values by "
        "exp(m_old - m_new), so that every term is exp(score - the same max)",
        {"rescale": "none"},
    ),
    (
        "only the running sum l is rescaled: the running weighted sum of values needs the "
        "same factor exp(m_old - m_new) when the max grows",
        {"rescale": "sum"},
    ),
    (
        "only the running weighted sum of values is rescaled: the running sum l needs the "
        "same factor exp(m_old - m_new) when the max grows",
        {"rescale": "values"},
    ),
    (
        "the rescale factor is inverted: the old sums were taken against the smaller old "
        "max, so they shrink by exp(m_old - m_new) (at most 1), not grow by exp(m_new - m_old)",
        {"rescale": "inverted"},
    ),
    (
        "the final division by the running sum is missing: after the last block, "
        "output = (running weighted sum of values) / l",
        {"divide": False},
    ),
    ("the scores are not divided by √D: s = q kᵀ / √head_dim, as SDPA does", {"scale": 1.0}),
]


class KeyWatch(TorchFunctionMode):
    """Notes, while the learner's function runs, the first sign that all the keys were
    scored at once: a result (..., T_q, T_k), or an SDPA call on more than
    ``block_size`` keys. Nothing is noted when one block holds every key."""

    def __init__(self, queries: int, keys: int, block_size: int) -> None:
        super().__init__()
        self.full, self.block_size = (queries, keys), block_size
        self.seen: str | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        watching = self.seen is None and self.block_size < self.full[1]
        if watching and name == "scaled_dot_product_attention":
            key = args[1] if len(args) > 1 else kwargs.get("key")
            if isinstance(key, Tensor) and key.dim() > 1 and key.shape[-2] > self.block_size:
                self.seen = f"scaled_dot_product_attention read {key.shape[-2]} keys at once"
        out = func(*args, **kwargs)
        if watching and isinstance(out, Tensor) and tuple(out.shape[-2:]) == self.full:
            self.seen = f"{name}() made a {shape_str(out.shape)} tensor, (..., T_q, T_k)"
        return out


def _watched(fn: Callable[..., Tensor], watch: KeyWatch) -> Callable[..., Tensor]:
    def call(*args, **kwargs):
        with watch:
            return fn(*args, **kwargs)

    return call


# (B, H, T_q, T_k, D, D_v, block_size, q's scale): a block that does not divide T_k, one
# that does, one key per block, one block (= T_k, then > T_k), scores past exp's range
ONLINE_CASES = [
    (2, 3, 5, 11, 16, 7, 4, 1.0),
    (1, 2, 7, 12, 8, 8, 3, 2.0),
    (2, 1, 6, 9, 4, 5, 1, 1.0),
    (1, 2, 4, 13, 8, 6, 13, 1.0),
    (2, 2, 5, 6, 8, 3, 10, 1.0),
    (2, 2, 6, 17, 16, 8, 5, 40.0),
]


def check_online_softmax_attention(attention_fn: Callable[..., Tensor]) -> None:
    """Lab 10: ``attention_fn(q, k, v, block_size=n)`` is SDPA's output, computed with an
    online softmax over blocks of n keys."""
    __tracebackhide__ = True
    what = "online_softmax_attention()"
    for seed, (b, h, t_q, t_k, d, d_v, block, q_scale) in enumerate(ONLINE_CASES):
        gen = torch.Generator().manual_seed(seed)
        q = torch.randn(b, h, t_q, d, generator=gen) * q_scale  # (B, H, T_q, D)
        k = torch.randn(b, h, t_k, d, generator=gen)  # (B, H, T_k, D)
        v = torch.randn(b, h, t_k, d_v, generator=gen)  # (B, H, T_k, D_v)
        scaled = f", q scaled by {q_scale:g}" if q_scale != 1 else ""
        ctx = f"{describe(q=q, k=k, v=v)}, block_size {block}{scaled}"
        watch = KeyWatch(t_q, t_k, block)
        inputs = {"q": q, "k": k, "v": v}
        out = run_on_copies(what, _watched(attention_fn, watch), inputs, context=ctx,
                            block_size=block)  # fmt: skip
        out = expect_tensor(what, out, ctx)  # (B, H, T_q, D_v)
        expect_shape(what, out, (b, h, t_q, d_v), "(B, H, T_q, D_v)", ctx)
        if watch.seen:
            fail(f"{what}: the keys are not read in blocks: {watch.seen}, with block_size "
                 f"{block} < T_k {t_k}; loop over k[..., start:start + block_size, :] and keep "
                 "one block of scores, (B, H, T_q, block_size), at a time", ctx)  # fmt: skip
        expected = F.scaled_dot_product_attention(q, k, v)  # (B, H, T_q, D_v)
        peak = float((q @ k.transpose(-2, -1)).amax()) / math.sqrt(d)
        if not bool(out.isfinite().all()) and peak > EXP_LIMIT:
            fail(f"{what}: exp overflows: the scores reach {peak:.0f} here and exp(s) is inf "
                 f"in float32 above {EXP_LIMIT}; subtract the running max before exp, "
                 "p = exp(s - m_new), so that every exponent is at most 0", ctx)  # fmt: skip
        mistakes = [(text, online_variant(q, k, v, block, **kw)) for text, kw in ONLINE_MISTAKES]
        compare(what, out, expected, mistakes, ctx)


# ---- cached decoding: one new token attends over the cache and itself ----

WEIGHT_STD = 1.5  # scores of a few units, so that a position off by one shows
DECODE_HINT = (
    "w_q, w_k, w_v are (D, E) like nn.Linear(E, D).weight: q = x_new @ w_q.T (B, 1, D); "
    "cache_k and cache_v are (B, T, D) and grow along dim 1, torch.cat([cache_k, k], dim=1)"
)


def rope_at(x: Tensor, first: int) -> Tensor:
    """x (B, T, D) rotated by v7's RoPE at positions first, first + 1, ..., first + T - 1."""
    positions = torch.arange(first, first + x.shape[-2])  # (T,)
    cos, sin = RotaryEmbedding(x.shape[-1])(positions, x.dtype)  # (T, D) each
    return apply_rope(x, cos, sin)  # (B, T, D)


def attend(q: Tensor, keys: Tensor, values: Tensor, scale: bool = True) -> Tensor:
    """q (B, 1, D) over keys and values (B, S, D) -> (B, 1, D); zeros when S is 0."""
    scores = q @ keys.transpose(-2, -1)  # (B, 1, S)
    scores = scores / math.sqrt(q.shape[-1]) if scale else scores
    return scores.softmax(dim=-1) @ values  # (B, 1, D)


def _off_by_one(wrong: int, position: int) -> str:
    return (
        f"the new token's position is off by one: its key is rotated at {wrong}, not at "
        f"position = {position}, the number of tokens already in the cache (0 for the first). "
        "The outputs can hide this (RoPE sees only distances, and shifting every position "
        "keeps them), but the cached keys sit at the wrong positions, and next to keys from "
        "a full forward pass (positions 0 .. T-1) every later step goes wrong"
    )


NOT_ROTATED = (
    "the keys in the cache are not rotated: rotate the new key with RoPE at position before "
    "appending it; the cache holds rotated keys, so that no later step rotates the past again"
)
VALUES_ROTATED = "the values are rotated: RoPE turns the queries and keys only, append v as is"
SEES_ITSELF_NOT = (
    "the new token does not see itself: its key and value are appended after attention; "
    "append them first, so that it attends over every cached key including its own"
)
QUERY_NOT_ROTATED = (
    "the query is not rotated: rotate q with RoPE at position as well as k, so that their "
    "dot product sees the distance between them"
)
NOT_SCALED = "the scores are not divided by √D: softmax(q kᵀ / √head_dim)"


def decode_mistakes(
    x_new: Tensor,
    cache_k: Tensor,
    cache_v: Tensor,
    w_q: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    position: int,
) -> dict[str, list[Mistake]]:
    """Each common mistake of one cached step in words, with what it gives for
    "cache_k" (B, T + 1, D), "cache_v" (B, T + 1, D) and "output" (B, 1, D)."""
    q, k, v = (x_new @ w.T for w in (w_q, w_k, w_v))  # (B, 1, D) each

    def keys(at: int) -> Tensor:
        return torch.cat([cache_k, rope_at(k, at)], dim=1)  # (B, T + 1, D)

    values = torch.cat([cache_v, v], dim=1)  # (B, T + 1, D)
    rotated_q, right_keys = rope_at(q, position), keys(position)  # (B, 1, D), (B, T + 1, D)
    query_off = [
        (
            f"the query is rotated at {at}, not at position = {position}: the new token's "
            "query and key both sit at position",
            attend(rope_at(q, at), right_keys, values),
        )
        for at in (position + 1, position - 1)
    ]
    return {
        # At position 1 an unrotated key is one rotated at 0; a position - 1 has already
        # failed at position 0, where an unrotated key is right, so that name comes first.
        "cache_k": [
            (NOT_ROTATED, torch.cat([cache_k, k], dim=1)),
            (_off_by_one(position + 1, position), keys(position + 1)),
            (_off_by_one(position - 1, position), keys(position - 1)),
        ],
        "cache_v": [(VALUES_ROTATED, torch.cat([cache_v, rope_at(v, position)], dim=1))],
        "output": [
            (SEES_ITSELF_NOT, attend(rotated_q, cache_k, cache_v)),
            (QUERY_NOT_ROTATED, attend(q, right_keys, values)),
            *query_off,
            (NOT_SCALED, attend(rotated_q, right_keys, values, scale=False)),
        ],
    }


def _expect_triple(what: str, value: object, context: str) -> tuple[Tensor, Tensor, Tensor]:
    __tracebackhide__ = True
    if not isinstance(value, tuple | list) or len(value) != 3:
        got = f"{len(value)} values" if isinstance(value, tuple | list) else type(value).__name__
        fail(f"{what}: expected a tuple (output, new_cache_k, new_cache_v), got {got}", context)
    names = ("output", "new_cache_k", "new_cache_v")
    return tuple(
        expect_tensor(f"{what} {name}", t, context) for name, t in zip(names, value, strict=True)
    )


# (B, E, D, prompt length, steps): from an empty cache, from a prompt's cache, B = 1
DECODE_CASES = [(2, 12, 8, 0, 5), (1, 10, 6, 4, 4), (3, 6, 4, 0, 3)]


def check_cached_decode_step(step_fn: Callable[..., tuple[Tensor, Tensor, Tensor]]) -> None:
    """Lab 10: ``step_fn(x_new, cache_k, cache_v, w_q, w_k, w_v, position=T)``, run step by
    step, gives full causal RoPE attention's outputs and caches of rotated keys and values."""
    __tracebackhide__ = True
    what = "cached_decode_step()"
    for seed, (batch, embed, head_dim, prompt, steps) in enumerate(DECODE_CASES):
        gen = torch.Generator().manual_seed(100 + seed)
        w_q, w_k, w_v = (torch.randn(head_dim, embed, generator=gen) * WEIGHT_STD / math.sqrt(embed)
                         for _ in range(3))  # (D, E) each  # fmt: skip
        x = torch.randn(batch, prompt + steps, embed, generator=gen)  # (B, T, E)
        q, k, v = (x @ w.T for w in (w_q, w_k, w_v))  # (B, T, D) each
        keys = rope_at(k, 0)  # (B, T, D) rotated at 0 .. T-1
        expected = F.scaled_dot_product_attention(rope_at(q, 0), keys, v, is_causal=True)
        cache_k, cache_v = keys[:, :prompt], v[:, :prompt]  # (B, P, D): as a prompt leaves them
        for position in range(prompt, prompt + steps):
            x_new = x[:, position : position + 1]  # (B, 1, E)
            start = f"a {prompt}-token prompt's cache" if prompt else "an empty cache"
            ctx = (f"step {position - prompt + 1} of {steps} from {start}, position {position}, "
                   + describe(x_new=x_new, cache_k=cache_k, cache_v=cache_v, w_q=w_q))  # fmt: skip
            inputs = {"x_new": x_new, "cache_k": cache_k, "cache_v": cache_v,
                      "w_q": w_q, "w_k": w_k, "w_v": w_v}  # fmt: skip
            result = run_on_copies(what, step_fn, inputs, context=ctx, crash_hint=DECODE_HINT,
                                   position=position)  # fmt: skip
            out, new_k, new_v = _expect_triple(what, result, ctx)
            wrong = decode_mistakes(x_new, cache_k, cache_v, w_q, w_k, w_v, position)
            length = (batch, position + 1, head_dim)
            for name, got, right in (("new_cache_k", new_k, keys), ("new_cache_v", new_v, v)):
                layout = "(B, T + 1, D): the cache with the new token appended"
                expect_shape(f"{what} {name}", got, length, layout, ctx)
                mistakes = wrong[name.removeprefix("new_")]
                compare(f"{what} {name}", got, right[:, : position + 1], mistakes, ctx)
            expect_shape(f"{what} output", out, (batch, 1, head_dim), "(B, 1, D)", ctx)
            compare(f"{what} output", out, expected[:, position : position + 1],
                    wrong["output"], ctx)  # fmt: skip
            cache_k, cache_v = new_k, new_v
