"""The suite's checks can fail: each common mistake, put into the real code, is caught.

Each test breaks one thing on purpose (monkeypatching the stage's own module) and asserts
that the same reference check the stage passes now raises.
"""

import math

import pytest
import torch

import transformer.v1_basic_attention.scaled_dot_product as v1_attention
import transformer.v2_multihead.masks as v2_masks
import transformer.v2_multihead.multihead as v2_multihead
from tests.golden.cases import golden_v1
from tests.reference import (
    attention_case,
    check_attention_against_sdpa,
    check_multihead_against_torch,
    multihead_case,
)
from tests.test_golden import test_stage_reproduces_stored_values
from transformer.v1_basic_attention import attention, softmax_over_keys
from transformer.v2_multihead import MultiHeadAttention


def failures(check, cases) -> int:
    """How many of ``cases`` the check rejects."""
    count = 0
    for case in cases:
        try:
            check(case)
        except AssertionError:
            count += 1
    return count


V1_CASES = [attention_case(seed) for seed in range(40)]
V2_CASES = [multihead_case(seed) for seed in range(60)]


def check_v1(case):
    check_attention_against_sdpa(attention, case)


def check_v2(case):
    check_multihead_against_torch(MultiHeadAttention, case)


def test_unbroken_stages_pass_the_checks():
    assert failures(check_v1, V1_CASES) == 0
    assert failures(check_v2, V2_CASES) == 0


def test_forgetting_the_sqrt_dk_scaling_is_caught(monkeypatch):
    monkeypatch.setattr(v1_attention, "scaled_scores", lambda q, k: q @ k.transpose(-2, -1))
    assert failures(check_v1, V1_CASES) >= 30


def test_scaling_by_dk_instead_of_its_root_is_caught(monkeypatch):
    def scaled_by_dk(q, k):
        return q @ k.transpose(-2, -1) / q.shape[-1]

    monkeypatch.setattr(v1_attention, "scaled_scores", scaled_by_dk)
    monkeypatch.setattr(v2_multihead, "scaled_scores", scaled_by_dk)
    assert failures(check_v1, V1_CASES) >= 30
    assert failures(check_v2, V2_CASES) >= 10


def test_softmax_over_the_wrong_dimension_is_caught(monkeypatch):
    def softmax_over_queries(scores):
        return torch.softmax(scores, dim=-2)

    monkeypatch.setattr(v1_attention, "softmax_over_keys", softmax_over_queries)
    assert failures(check_v1, V1_CASES) >= 30


def test_an_inverted_mask_is_caught():
    def inverted_mask_attention(query, key, value, mask=None):
        scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(mask != 0, float("-inf"))  # blocks what should attend
        weights = softmax_over_keys(scores)
        return weights @ value, weights

    masked = [case for case in V1_CASES if case.mask is not None]
    assert failures(
        lambda case: check_attention_against_sdpa(inverted_mask_attention, case), masked
    ) == len(masked)


def test_inverted_pytorch_mask_convention_is_caught(monkeypatch):
    real = v2_masks.to_additive

    def true_means_attend(name, mask, dtype):
        return real(name, ~mask if mask.dtype == torch.bool else mask, dtype)

    monkeypatch.setattr(v2_masks, "to_additive", true_means_attend)
    assert failures(check_v2, V2_CASES) >= 10


def test_heads_merged_in_the_wrong_order_is_caught(monkeypatch):
    def merge_without_transpose(x):
        batch, heads, seq, head_dim = x.shape
        return x.reshape(batch, seq, heads * head_dim)  # interleaves positions and heads

    monkeypatch.setattr(v2_multihead, "merge_heads", merge_without_transpose)
    assert failures(check_v2, V2_CASES) >= 20


def test_golden_values_catch_a_changed_stage(monkeypatch):
    golden_v1()  # the unbroken stage reproduces its stored values (test_golden)
    monkeypatch.setattr(
        v1_attention,
        "scaled_scores",
        lambda q, k: q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1] + 1),
    )
    with pytest.raises(AssertionError, match="v1 golden"):
        test_stage_reproduces_stored_values("v1")
