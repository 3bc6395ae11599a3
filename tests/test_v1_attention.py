"""v1 against F.scaled_dot_product_attention and nn.MultiheadAttention."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.reference import assert_close, attention_case, check_attention_against_sdpa
from transformer.v1_basic_attention import (
    MultiHeadAttention,
    ScaledDotProductAttention,
    attention,
    causal_mask,
)

CASES = range(120)


@pytest.mark.parametrize("seed", CASES)
def test_attention_equals_sdpa_float32(seed):
    check_attention_against_sdpa(attention, attention_case(seed, torch.float32))


@pytest.mark.parametrize("seed", CASES)
def test_attention_equals_sdpa_float64(seed):
    check_attention_against_sdpa(attention, attention_case(seed, torch.float64))


def test_cases_cover_ranks_and_mask_kinds():
    labels = [attention_case(seed).label for seed in CASES]
    assert {attention_case(s).query.dim() for s in CASES} == {3, 4}
    for kind in ("none", "bool", "int01", "float01"):
        assert sum(f"mask={kind}" in label for label in labels) >= 25


@pytest.mark.parametrize("seed", range(8))
def test_module_matches_sdpa(seed):
    """The module against the reference, not against the function it wraps."""
    check_attention_against_sdpa(ScaledDotProductAttention(), attention_case(seed))


def test_fully_blocked_row_gives_zero_weights_like_sdpa():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 4, 8, generator=gen) for _ in range(3))
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[1] = False  # query 1 may see nothing
    output, weights = attention(q, k, v, mask)
    assert torch.equal(weights[..., 1, :], torch.zeros(2, 3, 4))
    assert torch.equal(output[..., 1, :], torch.zeros(2, 3, 8))
    assert_close(output, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), "output")


def test_fully_blocked_row_has_finite_gradients():
    q, k, v = (torch.randn(1, 3, 4, requires_grad=True) for _ in range(3))
    mask = torch.tensor([[1, 0, 0], [0, 0, 0], [1, 1, 1]])
    output, _ = attention(q, k, v, mask)
    output.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_v1_mask_is_the_opposite_of_multihead_attention_mask():
    """1 = attend in v1; the same positions are True = blocked for nn.MultiheadAttention."""
    q, k, v = (torch.randn(1, 1, 5, 4) for _ in range(3))
    attend = causal_mask(5)
    ours, _ = attention(q, k, v, attend)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)  # SDPA: True = attend
    assert_close(ours, theirs, "output")
    assert torch.equal(attend, ~torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1))


def v1_and_reference(d_model, num_heads, seed):
    """A v1 MultiHeadAttention and an nn.MultiheadAttention holding the same weights."""
    torch.manual_seed(seed)
    ours = MultiHeadAttention(d_model, num_heads)
    ref = nn.MultiheadAttention(d_model, num_heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.w_q.weight, ours.w_k.weight, ours.w_v.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.w_q.bias, ours.w_k.bias, ours.w_v.bias]))
        ref.out_proj.weight.copy_(ours.w_o.weight)
        ref.out_proj.bias.copy_(ours.w_o.bias)
    return ours, ref


@pytest.mark.parametrize("seed", range(20))
def test_v1_multihead_equals_nn_multihead_attention(seed):
    gen = torch.Generator().manual_seed(seed)
    num_heads = int(torch.randint(1, 5, (), generator=gen))
    d_model = num_heads * int(torch.randint(1, 9, (), generator=gen))
    tgt_len, src_len = (int(torch.randint(1, 9, (), generator=gen)) for _ in range(2))
    ours, ref = v1_and_reference(d_model, num_heads, seed)
    query = torch.randn(3, tgt_len, d_model, generator=gen)
    key = torch.randn(3, src_len, d_model, generator=gen)
    value = torch.randn(3, src_len, d_model, generator=gen)
    attend = torch.rand(tgt_len, src_len, generator=gen) > 0.5  # (L, S) seed: True = attend
    attend[:, 0] = True
    output, weights = ours(query, key, value, attend)
    ref_output, ref_weights = ref(
        query, key, value, attn_mask=~attend, average_attn_weights=False
    )  # PyTorch: True = blocked
    assert_close(weights, ref_weights, "weights")
    assert_close(output, ref_output, "output")


def test_one_module_holds_both_classes_as_the_first_tutorial_says():
    import importlib

    module = importlib.import_module("transformer.v1_basic_attention.attention")
    from transformer.v1_basic_attention.attention import (
        MultiHeadAttention as Multi,
    )
    from transformer.v1_basic_attention.attention import (
        ScaledDotProductAttention as Single,
    )

    assert Single.__module__ == Multi.__module__ == module.__name__
    assert callable(module.attention) and callable(module.split_heads)
