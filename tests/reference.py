"""Reference checks shared by the tests: our stages against PyTorch's own implementations.

The checks are functions of the implementation under test, so the same check that passes
on a stage can be shown to fail on a deliberately broken copy (see test_checks_catch_bugs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def assert_close(actual: Tensor, expected: Tensor, what: str) -> None:
    """Equal to the dtype's tolerance (absolute and relative), NaN where the reference is."""
    tol = TOLERANCE[expected.dtype]
    torch.testing.assert_close(
        actual, expected, atol=tol, rtol=tol, equal_nan=True, msg=lambda m: f"{what}: {m}"
    )


# ---- v1: attention(query, key, value, mask) against F.scaled_dot_product_attention ----


@dataclass
class AttentionCase:
    query: Tensor  # (..., L, d_k)
    key: Tensor  # (..., S, d_k)
    value: Tensor  # (..., S, d_v)
    mask: Tensor | None  # v1's convention (1 = attend), broadcastable to (..., L, S)
    label: str


def attention_case(seed: int, dtype: torch.dtype = torch.float32) -> AttentionCase:
    """A random shape (3-D or 4-D), with no mask, a bool mask or a 0/1 mask of either kind."""
    gen = torch.Generator().manual_seed(seed)

    def randint(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (), generator=gen))

    lead = (randint(1, 4),) if seed % 2 == 0 else (randint(1, 3), randint(1, 4))
    tgt_len, src_len, d_k, d_v = randint(1, 9), randint(1, 9), randint(1, 16), randint(1, 16)
    query = torch.randn(*lead, tgt_len, d_k, generator=gen, dtype=dtype)
    key = torch.randn(*lead, src_len, d_k, generator=gen, dtype=dtype)
    value = torch.randn(*lead, src_len, d_v, generator=gen, dtype=dtype)
    kind = ["none", "bool", "int01", "float01"][seed % 4]
    mask = None
    if kind != "none":
        mask_shape = [(tgt_len, src_len), (*lead, tgt_len, src_len), (1, tgt_len, src_len)][
            (seed // 4) % 3
        ]
        allowed = torch.rand(mask_shape, generator=gen) > 0.4  # (..., L, S)
        allowed[..., randint(0, src_len - 1)] = True  # no fully blocked rows here
        mask = {"bool": allowed, "int01": allowed.long(), "float01": allowed.to(dtype)}[kind]
    label = f"lead={lead} L={tgt_len} S={src_len} d_k={d_k} d_v={d_v} mask={kind}"
    return AttentionCase(query, key, value, mask, label)


def sdpa_reference(case: AttentionCase) -> tuple[Tensor, Tensor]:
    """SDPA's output, and its weights read off by attending over an identity 'value'."""
    attend = None if case.mask is None else case.mask.bool()  # SDPA: True = attend
    output = F.scaled_dot_product_attention(case.query, case.key, case.value, attn_mask=attend)
    src_len = case.key.shape[-2]
    eye = torch.eye(src_len, dtype=case.query.dtype).expand(*case.key.shape[:-1], src_len)
    weights = F.scaled_dot_product_attention(case.query, case.key, eye, attn_mask=attend)
    return output, weights  # (..., L, d_v), (..., L, S)


AttentionFn = Callable[..., tuple[Tensor, Tensor]]


def check_attention_against_sdpa(attention_fn: AttentionFn, case: AttentionCase) -> None:
    """Raise AssertionError unless ``attention_fn`` equals SDPA on ``case``."""
    output, weights = attention_fn(case.query, case.key, case.value, case.mask)
    ref_output, ref_weights = sdpa_reference(case)
    assert_close(weights, ref_weights, f"weights [{case.label}]")
    assert_close(output, ref_output, f"output [{case.label}]")


# ---- v2: MultiHeadAttention against nn.MultiheadAttention ----


@dataclass
class MultiheadCase:
    """One random configuration: constructor kwargs, forward inputs and the mode to run in."""

    init: dict
    inputs: tuple[Tensor, Tensor, Tensor]
    call: dict
    training: bool
    grad_enabled: bool
    label: str


def _mask(kind: str, shape: tuple[int, ...], gen: torch.Generator, dtype: torch.dtype) -> Tensor:
    """A random bool (True = blocked) or float (additive) mask that never blocks key 0."""
    blocked = torch.rand(shape, generator=gen) > 0.6
    blocked[..., 0] = False
    if kind == "bool":
        return blocked
    noise = torch.randn(shape, generator=gen, dtype=dtype)
    return noise.masked_fill(blocked, float("-inf"))


def multihead_case(seed: int, dtype: torch.dtype = torch.float32) -> MultiheadCase:
    """Every constructor and forward argument of nn.MultiheadAttention, varied by seed."""
    gen = torch.Generator().manual_seed(seed)

    def pick(options):
        return options[int(torch.randint(len(options), (), generator=gen))]

    num_heads = pick([1, 2, 3, 4])
    embed_dim = num_heads * pick([1, 2, 3, 4, 6, 8])
    init = {
        "embed_dim": embed_dim,
        "num_heads": num_heads,
        "bias": pick([True, False]),
        "add_bias_kv": pick([False, False, True]),
        "add_zero_attn": pick([False, False, True]),
        "kdim": pick([None, None, 5]),
        "vdim": pick([None, None, 7]),
        "batch_first": pick([True, False]),
        "dtype": dtype,
    }
    batched, batch = pick([True, True, False]), pick([1, 2, 3])
    tgt_len = pick([1, 2, 5, 8])
    is_causal = pick([False, False, False, True])
    src_len = tgt_len if is_causal else pick([1, 3, 6, 9])
    kdim, vdim = init["kdim"] or embed_dim, init["vdim"] or embed_dim

    def make(seq: int, features: int) -> Tensor:
        shape = (seq, features) if not batched else (batch, seq, features)
        shape = shape if not batched or init["batch_first"] else (seq, batch, features)
        return torch.randn(shape, generator=gen, dtype=dtype)

    query = make(tgt_len, embed_dim)
    self_attention = kdim == vdim == embed_dim and src_len == tgt_len and pick([True, False])
    key, value = (query, query) if self_attention else (make(src_len, kdim), make(src_len, vdim))
    n = batch if batched else 1
    attn_kind = "causal" if is_causal else pick(["none", "bool2d", "float2d", "bool3d", "float3d"])
    if attn_kind == "causal":
        attn_mask = torch.ones(tgt_len, tgt_len, dtype=torch.bool).triu(1)  # True = blocked
    elif attn_kind == "none":
        attn_mask = None
    else:
        lead = (tgt_len, src_len) if attn_kind.endswith("2d") else (n * num_heads, tgt_len, src_len)
        attn_mask = _mask(attn_kind[:-2], lead, gen, dtype)
    kpm_kind = pick(["none", "none", "bool", "float"])
    kpm = None
    if kpm_kind != "none":
        kpm = _mask(kpm_kind, (batch, src_len) if batched else (src_len,), gen, dtype)
    call = {
        "key_padding_mask": kpm,
        "need_weights": pick([True, False]),
        "attn_mask": attn_mask,
        "average_attn_weights": pick([True, False]),
        "is_causal": is_causal,
    }
    if is_causal and kpm is None and (init["add_bias_kv"] or init["add_zero_attn"]):
        # PyTorch then swaps attn_mask for SDPA's own causal mask, which also blocks the
        # extra keys: it disagrees with itself there (see test_is_causal_quirk_of_pytorch).
        call["need_weights"] = True
    training, grad_enabled = pick([True, False]), pick([True, False])
    label = (
        f"seed={seed} {init} batched={batched} L={tgt_len} S={src_len} self={self_attention} "
        f"attn_mask={attn_kind} kpm={kpm_kind} need_weights={call['need_weights']} "
        f"avg={call['average_attn_weights']} train={training} grad={grad_enabled}"
    )
    return MultiheadCase(init, (query, key, value), call, training, grad_enabled, label)


def check_multihead_against_torch(module_cls: type, case: MultiheadCase) -> None:
    """Raise AssertionError unless ``module_cls`` equals nn.MultiheadAttention on ``case``."""
    torch.manual_seed(0)
    reference = torch.nn.MultiheadAttention(**case.init)
    ours = module_cls(**case.init)
    ours.load_state_dict(reference.state_dict())
    reference.train(case.training)
    ours.train(case.training)
    with torch.set_grad_enabled(case.grad_enabled):
        ref_output, ref_weights = reference(*case.inputs, **case.call)
        output, weights = ours(*case.inputs, **case.call)
    assert_close(output, ref_output, f"output [{case.label}]")
    if ref_weights is None:
        assert weights is None, f"weights: expected None with need_weights=False [{case.label}]"
    else:
        assert_close(weights, ref_weights, f"weights [{case.label}]")
