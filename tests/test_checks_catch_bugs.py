"""The suite's checks can fail: each common mistake, put into the real code, is caught.

Each test breaks one thing on purpose (monkeypatching the stage's own module) and asserts
that the same reference check the stage passes now raises.
"""

import importlib
import math

import pytest
import torch

import tests.test_golden as golden_tests
import transformer.v2_multihead.masks as v2_masks
import transformer.v2_multihead.multihead as v2_multihead
from tests.golden.cases import golden_v1
from tests.reference import (
    attention_case,
    check_attention_against_sdpa,
    check_multihead_against_torch,
    multihead_case,
)
from tests.test_v3_positional import TABLE_SIZES, check_table_against_formula
from tests.test_v4_block import block_case, check_block_against_torch
from transformer.v1_basic_attention import attention, softmax_over_keys
from transformer.v2_multihead import MultiHeadAttention
from transformer.v3_positional import sinusoidal_encoding
from transformer.v4_block import TransformerBlock

v1_attention = importlib.import_module(
    "transformer.v1_basic_attention.attention"
)  # the module (the package's .attention is the function)


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
V4_CASES = [block_case(seed) for seed in range(40)]


def check_v1(case):
    check_attention_against_sdpa(attention, case)


def check_v2(case):
    check_multihead_against_torch(MultiHeadAttention, case)


def check_v3(encoding_fn):
    def check(sizes):
        check_table_against_formula(encoding_fn, *sizes)

    return check


def check_v4(case):
    check_block_against_torch(case, train=False)


def test_unbroken_stages_pass_the_checks():
    assert failures(check_v1, V1_CASES) == 0
    assert failures(check_v2, V2_CASES) == 0
    assert failures(check_v3(sinusoidal_encoding), TABLE_SIZES) == 0
    assert failures(check_v4, V4_CASES) == 0


def broken_table(max_len: int, d_model: int, swap=False, exponent=None, first_position=0):
    """The sinusoidal table with one common mistake."""
    position = torch.arange(first_position, first_position + max_len).double().unsqueeze(1)
    column = torch.arange(d_model).double()
    two_i = column - column % 2 if exponent is None else exponent(column)
    angle = position / 10000 ** (two_i / d_model)  # (max_len, d_model)
    even = (column % 2 == 0) != swap
    return torch.where(even, torch.sin(angle), torch.cos(angle)).float()


@pytest.mark.parametrize(
    "mistake",
    [
        {"swap": True},  # cos on even columns, sin on odd
        {"exponent": lambda column: column},  # pos / 10000^(c/d) for every column c
        {"exponent": lambda column: column // 2},  # i where the paper has 2i
        {"first_position": 1},  # positions counted from 1
    ],
)
def test_wrong_sinusoidal_formulas_are_caught(mistake):
    def encoding(max_len, d_model):
        return broken_table(max_len, d_model, **mistake)

    assert failures(check_v3(broken_table), TABLE_SIZES) == 0  # the harness itself is right
    assert failures(check_v3(encoding), TABLE_SIZES) >= 3  # tables with only i = 0 may pass


def test_a_block_without_the_attention_residual_is_caught(monkeypatch):
    """The sublayer returns attended - x, where x is what the residual adds back: the
    block's input in post-norm, and the stream that norm1 normalises in pre-norm."""
    real_attention, real_forward = (
        TransformerBlock.self_attention,
        TransformerBlock.forward_with_attention,
    )

    def forward_recording_the_stream(self, *args, **kwargs):
        norm1, stream = self.norm1, {}

        def recording_norm(x):
            stream["x"] = x
            return norm1(x)

        self.__dict__["norm1"], self.__dict__["stream"] = recording_norm, stream
        try:
            return real_forward(self, *args, **kwargs)
        finally:
            del self.__dict__["norm1"], self.__dict__["stream"]

    def minus_residual(self, x, *args):
        attended, weights = real_attention(self, x, *args)
        residual = self.stream["x"] if self.norm_first else x
        return attended - residual, weights  # the caller adds it back: no residual left

    monkeypatch.setattr(TransformerBlock, "forward_with_attention", forward_recording_the_stream)
    assert failures(check_v4, V4_CASES) == 0  # recording the stream changes nothing
    monkeypatch.setattr(TransformerBlock, "self_attention", minus_residual)
    pre_norm = [case for case in V4_CASES if case.kwargs["norm_first"]]
    assert len(pre_norm) >= 10
    assert failures(check_v4, pre_norm) == len(pre_norm)
    assert failures(check_v4, V4_CASES) == len(V4_CASES)


FULLY_BLOCKED = []  # cases with some query rows whose every key is blocked
for case in V1_CASES:
    if case.mask is not None and case.mask.shape[-2] > 1:
        mask = case.mask.clone()
        mask[..., 0, :] = 0  # the first query sees nothing
        FULLY_BLOCKED.append(type(case)(case.query, case.key, case.value, mask, case.label))


def test_fully_blocked_rows_are_covered_and_their_handling_can_fail(monkeypatch):
    assert len(FULLY_BLOCKED) >= 10
    assert failures(check_v1, FULLY_BLOCKED) == 0  # zeros there, like SDPA
    monkeypatch.setattr(v1_attention, "softmax_over_keys", lambda s: torch.softmax(s, dim=-1))
    assert failures(check_v1, FULLY_BLOCKED) == len(FULLY_BLOCKED)


def test_swapped_norm_placement_is_caught(monkeypatch):
    real = TransformerBlock.forward_with_attention

    def swapped(self, *args, **kwargs):
        self.norm_first = not self.norm_first
        try:
            return real(self, *args, **kwargs)
        finally:
            self.norm_first = not self.norm_first

    monkeypatch.setattr(TransformerBlock, "forward_with_attention", swapped)
    assert failures(check_v4, V4_CASES) == len(V4_CASES)


def test_activation_after_the_second_linear_is_caught(monkeypatch):
    def late_activation(self, x):
        return self.dropout2(self.activation(self.linear2(self.dropout(self.linear1(x)))))

    monkeypatch.setattr(TransformerBlock, "feed_forward", late_activation)
    assert failures(check_v4, V4_CASES) == len(V4_CASES)


def test_forgetting_the_sqrt_dk_scaling_is_caught(monkeypatch):
    monkeypatch.setattr(v1_attention, "scaled_scores", lambda q, k: q @ k.transpose(-2, -1))
    assert failures(check_v1, V1_CASES) >= 30


EXPLICIT = [case for case in V2_CASES if case.call["need_weights"]]
FUSED = [case for case in V2_CASES if not case.call["need_weights"]]


def large_heads(cases):
    """Cases whose head_dim > 1: with head_dim 1, d_k and √d_k are the same number. (Some of
    these still see one key per query, where the scale cannot matter either.)"""
    return [c for c in cases if c.init["embed_dim"] // c.init["num_heads"] > 1]


def most(cases) -> int:
    return max(10, round(0.75 * len(cases)))


def test_scaling_by_dk_on_the_explicit_path_is_caught(monkeypatch):
    def scaled_by_dk(q, k):
        return q @ k.transpose(-2, -1) / q.shape[-1]

    monkeypatch.setattr(v1_attention, "scaled_scores", scaled_by_dk)
    assert failures(check_v1, V1_CASES) >= 30
    assert failures(check_v2, FUSED) == 0  # the fused path never calls scaled_scores
    assert failures(check_v2, large_heads(EXPLICIT)) >= most(large_heads(EXPLICIT))


class FusedScaledByDk:
    """``torch.nn.functional`` with SDPA scaling by 1/d_k instead of 1/√d_k."""

    def __getattr__(self, name):
        return getattr(torch.nn.functional, name)

    @staticmethod
    def scaled_dot_product_attention(q, k, v, **kwargs):
        return torch.nn.functional.scaled_dot_product_attention(
            q, k, v, scale=1 / q.shape[-1], **kwargs
        )


def test_scaling_by_dk_on_the_fused_path_is_caught(monkeypatch):
    monkeypatch.setattr(v1_attention, "F", FusedScaledByDk())
    assert failures(check_v2, EXPLICIT) == 0  # the explicit path never calls SDPA
    assert failures(check_v2, large_heads(FUSED)) >= most(large_heads(FUSED))


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
        golden_tests.test_stage_reproduces_stored_values("v1")
