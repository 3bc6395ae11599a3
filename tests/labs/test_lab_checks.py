"""The lab checks are valid: solutions pass, and each common mistake fails with its name."""

from __future__ import annotations

import re

import pytest
import torch

from tests.labs import broken
from transformer.v1_basic_attention import (
    MultiHeadAttention,
    attention,
)
from transformer.v3_positional import SinusoidalPositionalEncoding
from transformer.v4_block import TransformerBlock
from transformer.v6_encoder_decoder import TransformerDecoderLayer
from transformer.v7_modern import RMSNorm
from transformer.v8_efficient import tiled_attention
from transformer_teaching.labs import (
    LabCheckFailure,
    lab01,
    lab02,
    lab03,
    lab04,
    lab05,
    lab06,
    lab07,
    lab08,
    lab09,
    lab10,
    solutions,
)


def milestone_with_load(load_fn):
    lab04.check_matches_torch(load_fn, solutions.to_torch_mask)


def milestone_with_mask(mask_fn):
    lab04.check_matches_torch(solutions.load_from_torch, mask_fn)


# Rows whose check compares against the very function passed (lab 01's attention, lab 03's
# split/merge, lab 05's table are the checks' references) would prove nothing; independent
# learner-style code in tests/labs/broken.py stands in for them below.
SOLVED = [
    pytest.param(lab02.check_attention_maps, solutions.attention_maps, id="lab02-maps"),
    pytest.param(lab02.check_plot_attention, solutions.plot_attention, id="lab02-plot"),
    pytest.param(lab03.check_multihead, MultiHeadAttention, id="lab03-multihead"),
    pytest.param(lab04.check_to_torch_mask, solutions.to_torch_mask, id="lab04-mask"),
    pytest.param(lab04.check_load_from_torch, solutions.load_from_torch, id="lab04-load"),
    pytest.param(milestone_with_load, solutions.load_from_torch, id="lab04-milestone"),
    pytest.param(
        lab05.check_positional_encoding, SinusoidalPositionalEncoding, id="lab05-positions"
    ),
    pytest.param(lab05.check_order_aware, SinusoidalPositionalEncoding, id="lab05-milestone"),
    pytest.param(lab06.check_feed_forward, TransformerBlock, id="lab06-feed-forward"),
    pytest.param(lab06.check_post_norm, TransformerBlock, id="lab06-post-norm"),
    pytest.param(lab06.check_pre_norm, TransformerBlock, id="lab06-pre-norm"),
    pytest.param(lab07.check_rope, solutions.rope, id="lab07-rope"),
    pytest.param(lab07.check_rmsnorm, RMSNorm, id="lab07-rmsnorm"),
    pytest.param(lab07.check_rmsnorm, torch.nn.RMSNorm, id="lab07-torch-rmsnorm"),
    pytest.param(lab08.check_cross_attention, solutions.cross_attention, id="lab08-cross"),
    pytest.param(lab08.check_decoder_block, TransformerDecoderLayer, id="lab08-decoder"),
    # learner-style code: a plain torch.softmax, -inf masking, .view and .reshape; a float32
    # exp/log table; a block written out with its own helpers
    pytest.param(lab01.check_attention, broken.attention_correct, id="lab01-learner-style"),
    pytest.param(lab03.check_multihead, broken.LearnerMultiHead, id="lab03-learner-style"),
    pytest.param(lab03.check_split_heads, broken.split_correct, id="lab03-learner-split"),
    pytest.param(lab03.check_merge_heads, broken.merge_correct, id="lab03-learner-merge"),
    pytest.param(
        lab05.check_sinusoidal_encoding, broken.encoding_correct, id="lab05-learner-style"
    ),
    pytest.param(
        lab05.check_positional_encoding, broken.LearnerPositions, id="lab05-learner-module"
    ),
    pytest.param(lab06.check_feed_forward, broken.LearnerBlock, id="lab06-learner-feed-forward"),
    pytest.param(lab06.check_post_norm, broken.LearnerBlock, id="lab06-learner-post-norm"),
    pytest.param(lab06.check_pre_norm, broken.LearnerBlock, id="lab06-learner-pre-norm"),
    pytest.param(lab07.check_rope_frequencies, broken.freqs_correct, id="lab07-learner-freqs"),
    pytest.param(lab07.check_rotate_half, broken.rotate_correct, id="lab07-learner-rotate"),
    pytest.param(lab07.check_rope, broken.rope_correct, id="lab07-learner-rope"),
    pytest.param(lab07.check_rope, broken.rope_complex_half_split, id="lab07-learner-complex"),
    pytest.param(lab07.check_rmsnorm, broken.LearnerRMSNorm, id="lab07-learner-rmsnorm"),
    pytest.param(lab08.check_cross_attention, broken.cross_correct, id="lab08-learner-cross"),
    pytest.param(lab08.check_decoder_block, broken.LearnerDecoderBlock, id="lab08-learner-block"),
    pytest.param(lab09.check_block, broken.gpt_correct.CausalBlock, id="lab09-block"),
    pytest.param(lab09.check_gpt, broken.gpt_correct.GPT, id="lab09-gpt"),
    pytest.param(lab09.check_generate, broken.gpt_correct.generate, id="lab09-generate"),
    pytest.param(
        lab10.check_online_softmax_attention,
        broken.efficient_correct.online_softmax_attention,
        id="lab10-online-softmax",
    ),
    pytest.param(
        lab10.check_cached_decode_step,
        broken.efficient_correct.cached_decode_step,
        id="lab10-decode",
    ),
    pytest.param(
        lab10.check_online_softmax_attention, broken.online_correct, id="lab10-learner-online"
    ),
    pytest.param(lab10.check_cached_decode_step, broken.decode_correct, id="lab10-learner-decode"),
    pytest.param(
        lab10.check_online_softmax_attention,
        lambda q, k, v, block_size: tiled_attention(q, k, v, block_size=block_size),
        id="lab10-v8-tiled-attention",
    ),
]


@pytest.mark.parametrize(("check", "solution"), SOLVED)
def test_solutions_pass(check, solution):
    check(solution)


def test_milestone_passes_with_another_seed_module_class():
    lab04.check_matches_torch(
        solutions.load_from_torch, solutions.to_torch_mask, broken.LearnerMultiHead
    )


# (check, broken implementation, phrase naming the mistake, whether numbers are compared)
BROKEN = [
    (lab01.check_attention, broken.attention_no_scaling, "forgot to divide the scores by √d_k", 1),
    (lab01.check_attention, broken.attention_scaled_by_dk, "by d_k instead of √d_k", 1),
    (
        lab01.check_attention,
        broken.attention_softmax_over_queries,
        "softmax is taken over the wrong dimension (queries instead of keys)",
        1,
    ),
    (lab01.check_attention, broken.attention_mask_inverted, "the mask is inverted", 1),
    (lab01.check_attention, broken.attention_mask_filled_with_zero, "set to 0 instead of -inf", 1),
    (
        lab01.check_attention,
        broken.attention_returns_weights_first,
        "you returned (weights, output)",
        0,
    ),
    (lab02.check_attention_maps, broken.maps_batch_averaged, "averaged over the batch", 1),
    (lab02.check_attention_maps, broken.maps_head_averaged, "averaged over the heads", 0),
    (lab02.check_attention_maps, broken.maps_wrong_layer, "this is layer 2's map: entry 0", 1),
    (lab02.check_attention_maps, broken.maps_first_sequence, "this is sequence 0 of the batch", 1),
    (
        lab02.check_attention_maps,
        broken.maps_from_logits,
        "these are logits (seq, vocab), not attention",
        0,
    ),
    (lab02.check_plot_attention, broken.plot_transposed, "heatmap is transposed", 1),
    (
        lab02.check_plot_attention,
        broken.plot_without_tick_labels,
        "x tick labels are the positions 0, 1, 2, ..., not the tokens",
        0,
    ),
    (lab02.check_plot_attention, broken.plot_reversed_tick_labels, "in reverse order", 0),
    (
        lab02.check_plot_attention,
        broken.plot_colour_scale_not_fixed,
        "colour scale is not fixed to [0, 1]",
        0,
    ),
    (lab02.check_plot_attention, broken.plot_swapped_axis_titles, "axis titles are swapped", 0),
    (lab02.check_plot_attention, broken.plot_returns_axes, "return the Figure", 0),
    (lab03.check_split_heads, broken.split_without_transpose, "without the transpose", 1),
    (lab03.check_split_heads, broken.split_returns_time_first, "so that heads come first", 0),
    (lab03.check_merge_heads, broken.merge_without_transpose, "merged in the wrong order", 1),
    (lab03.check_merge_heads, broken.merge_with_view_after_transpose, "use .reshape", 0),
    (lab03.check_multihead, broken.MultiHeadMergedWrong, "merged in the wrong order", 1),
    (lab03.check_multihead, broken.MultiHeadScaledByDModel, "divided by √d_model", 1),
    (lab03.check_multihead, broken.MultiHeadAveragedWeights, "not their average", 0),
    (lab03.check_multihead, broken.MultiHeadMaskInverted, "the mask is inverted", 1),
    (
        lab04.check_load_from_torch,
        broken.load_qkv_swapped,
        "q, k and v rows of in_proj_weight are in the wrong order",
        1,
    ),
    (lab04.check_load_from_torch, broken.load_kv_swapped, "in the wrong order", 1),
    (lab04.check_load_from_torch, broken.load_transposed, "w_q.weight is transposed", 1),
    (lab04.check_load_from_torch, broken.load_without_biases, "w_q.bias was not copied", 1),
    (lab04.check_load_from_torch, broken.load_into_a_copy, "w_q.weight was not copied", 1),
    (milestone_with_load, broken.load_qkv_swapped, "in the wrong order", 1),
    (milestone_with_load, broken.load_without_biases, "w_q.bias was not copied", 1),
    (lab04.check_to_torch_mask, broken.mask_not_converted, "mask convention was not converted", 1),
    (lab04.check_to_torch_mask, broken.mask_as_float, "expected dtype torch.bool", 0),
    (milestone_with_mask, broken.mask_not_converted, "mask convention was not converted", 1),
    (milestone_with_mask, broken.mask_as_float, "adds a floating attn_mask", 1),
    (
        lab05.check_sinusoidal_encoding,
        broken.encoding_sin_cos_swapped,
        "sin and cos are swapped",
        1,
    ),
    (lab05.check_sinusoidal_encoding, broken.encoding_exponent_i, "uses the pair index i", 1),
    (
        lab05.check_sinusoidal_encoding,
        broken.encoding_loop_with_column_exponent,
        "each column's own index",
        1,
    ),
    (lab05.check_sinusoidal_encoding, broken.encoding_base_1000, "the base is 1000:", 1),
    (lab05.check_sinusoidal_encoding, broken.encoding_base_10e4, "10e4 means 10·10⁴", 1),
    (lab05.check_sinusoidal_encoding, broken.encoding_positions_from_1, "positions start at 1", 1),
    (lab05.check_sinusoidal_encoding, broken.encoding_concatenated, "are concatenated", 1),
    (
        lab05.check_sinusoidal_encoding,
        broken.encoding_crashes_on_odd_d_model,
        "d_model = 5 is odd: there are 3 sine columns",
        0,
    ),
    (lab05.check_positional_encoding, broken.PositionsNotSliced, "is the whole table added?", 0),
    (lab05.check_positional_encoding, broken.PositionsNotAdded, "positions are not added", 1),
    (
        lab05.check_positional_encoding,
        broken.PositionsWithoutLengthCheck,
        "expected a ValueError: when seq_len > max_len",
        0,
    ),
    (
        lab05.check_positional_encoding,
        broken.PositionsLengthCheckOffByOne,
        "seq_len == max_len is allowed",
        0,
    ),
    (lab05.check_positional_encoding, broken.PositionsAsParameter, "register_buffer", 0),
    (lab05.check_positional_encoding, broken.PositionsInPlace, "changed its input x in place", 0),
    (lab05.check_positional_encoding, broken.PositionsInFloat64, "expected dtype torch.float32", 0),
    (lab05.check_order_aware, broken.PositionsNotAdded, "cannot tell positions apart", 0),
    (lab06.check_feed_forward, broken.BlockActivationAfterLinear2, "applied after linear2", 1),
    (lab06.check_feed_forward, broken.BlockIgnoresActivation, "activation argument is ignored", 1),
    (lab06.check_feed_forward, broken.BlockDropoutInEval, "dropout is active in eval mode", 0),
    (lab06.check_post_norm, broken.BlockWithoutResiduals, "both residual connections are", 1),
    (lab06.check_pre_norm, broken.BlockWithoutResiduals, "both residual connections are", 1),
    (lab06.check_post_norm, broken.BlockAlwaysPreNorm, "norm_first=False asks for post-norm", 1),
    (lab06.check_pre_norm, broken.BlockAlwaysPostNorm, "norm_first=True asks for pre-norm", 1),
    (lab06.check_post_norm, broken.BlockWithoutNorm2, "norm2 is not applied", 1),
    (lab06.check_pre_norm, broken.BlockWithoutNorm2, "norm2 is not applied", 1),
    (lab06.check_pre_norm, broken.BlockNorm1Twice, "norm1 is used for both sublayers", 1),
    (lab06.check_post_norm, broken.BlockActivationAfterLinear2, "applied after linear2", 1),
    (lab06.check_post_norm, broken.BlockDropoutInEval, "dropout is active in eval mode", 0),
    (lab06.check_feed_forward, broken.BlockWithoutDropout, "dropout (p=0.1) is never applied", 0),
    (lab06.check_post_norm, broken.BlockResidualAfterNorm, "the residual is added after the", 1),
    (lab06.check_pre_norm, broken.BlockResidualFromNorm, "carries the normalised x", 1),
    (lab06.check_post_norm, broken.BlockIgnoresActivation, "activation argument is ignored", 1),
    (lab06.check_pre_norm, broken.BlockIgnoresMasks, "the masks are not applied", 1),
    (lab06.check_post_norm, broken.BlockAlwaysSeqFirst, "self_attn reads the wrong layout", 1),
    (lab06.check_post_norm, broken.BlockInPlaceResidual, "changed its input src in place", 0),
    (lab06.check_pre_norm, broken.BlockWithOwnNames, "missing ['norm1.weight'", 0),
    (lab07.check_rope_frequencies, broken.freqs_exponent_i, "the frequencies are θ^(-i/D)", 1),
    (lab07.check_rope_frequencies, broken.freqs_growing, "the frequencies grow, θ^(+2i/D)", 1),
    (lab07.check_rope_frequencies, broken.freqs_not_divided, "not divided by head_dim", 1),
    (lab07.check_rope_frequencies, broken.freqs_ignore_theta, "here 500000), not always", 1),
    (lab07.check_rope_frequencies, broken.freqs_one_per_feature, "one frequency per pair", 0),
    (lab07.check_rotate_half, broken.rotate_interleaved, "pairs feature 2i with 2i+1", 1),
    (lab07.check_rotate_half, broken.rotate_wrong_way, "the turn goes the wrong way", 1),
    (lab07.check_rotate_half, broken.rotate_without_minus, "the minus sign is missing", 1),
    (lab07.check_rope, broken.rope_interleaved, "the pairing is interleaved", 1),
    (lab07.check_rope, broken.rope_interleaved_turn, "rotate_half turns the interleaved", 1),
    (lab07.check_rope, broken.rope_interleaved_table, "the angle table is interleaved", 1),
    (lab07.check_rope, broken.rope_positions_from_1, "positions start at 1", 1),
    (lab07.check_rope, broken.rope_exponent_i, "the frequencies are θ^(-i/D)", 1),
    (lab07.check_rope, broken.rope_growing_frequencies, "the frequencies grow", 1),
    (lab07.check_rope, broken.rope_wrong_way, "the rotation goes the wrong way", 1),
    (lab07.check_rope, broken.rope_ignores_theta, "the theta argument is ignored", 1),
    (lab07.check_rope, broken.rope_angles_not_repeated, "torch.cat([angles, angles]", 0),
    (lab07.check_rope, broken.rope_in_float64, "expected dtype torch.float32 like x", 0),
    (lab07.check_rmsnorm, broken.RMSNormEpsOutside, "ε is added outside the square root", 1),
    (lab07.check_rmsnorm, broken.RMSNormAsLayerNorm, "this is LayerNorm", 1),
    (lab07.check_rmsnorm, broken.RMSNormSubtractsMean, "the mean is subtracted from x", 1),
    (lab07.check_rmsnorm, broken.RMSNormRootOfSum, "the root of the sum of squares", 1),
    (lab07.check_rmsnorm, broken.RMSNormWholeTensorMean, "over the whole tensor", 1),
    (lab07.check_rmsnorm, broken.RMSNormWithoutWeight, "the weight is not applied", 1),
    (lab07.check_rmsnorm, broken.RMSNormIgnoresEps, "the eps argument is ignored", 1),
    (lab07.check_rmsnorm, broken.RMSNormWithBias, "RMSNorm has no bias", 0),
    (lab07.check_rmsnorm, broken.RMSNormWeightAsTensor, "a trainable gain, got Tensor", 0),
    (lab07.check_rmsnorm, broken.RMSNormRandomWeight, "expected to start at 1", 0),
    (lab07.check_rmsnorm, broken.RMSNormWithoutKeepdim, "keepdim=True", 0),
    (lab07.check_rmsnorm, broken.RMSNormInPlace, "changed its input x in place", 0),
    (lab01.check_attention, broken.attention_by_sqrt_d_v, "divided the scores by √d_v", 1),
    (lab01.check_attention, broken.attention_transpose_1_2, "swap the last two instead", 0),
    (lab08.check_cross_attention, broken.cross_keys_from_target, "values come from the target", 1),
    (lab08.check_cross_attention, broken.cross_causal, "causal mask is put on cross-attention", 1),
    (lab08.check_cross_attention, broken.cross_forgets_padding, "key-padding mask is forgotten", 1),
    (lab08.check_cross_attention, broken.cross_queries_from_memory, "has the source's length", 0),
    (lab08.check_decoder_block, broken.DecoderCrossKeysFromTarget, "come from the target", 1),
    (lab08.check_decoder_block, broken.DecoderCausalCross, "causal mask is put on cross", 1),
    (lab08.check_decoder_block, broken.DecoderForgetsPadding, "key-padding mask is forgotten", 1),
    (lab08.check_decoder_block, broken.DecoderNotCausal, "causal mask is not applied", 1),
    (lab08.check_decoder_block, broken.DecoderCrossFirst, "sublayers are in the wrong order", 1),
    (lab08.check_decoder_block, broken.DecoderNorm2Twice, "it has its own LayerNorm, norm3", 1),
    (lab08.check_decoder_block, broken.DecoderWithoutCrossResidual, "around cross-attention", 1),
    (lab08.check_decoder_block, broken.DecoderAlwaysPostNorm, "norm_first=True asks for pre", 1),
    (lab09.check_block, broken.GPTBlockNotCausal, "the block is not causal", 1),
    (lab09.check_block, broken.GPTBlockExactGelu, "the tanh approximation", 1),
    (lab09.check_gpt, broken.GPTWithoutPositions, "the positions are not added", 1),
    (lab09.check_gpt, broken.GPTUntiedHead, "the head is not tied", 0),
    (lab09.check_generate, broken.generate_from_first_position, "taken from the first", 0),
    (lab09.check_generate, broken.generate_temperature_after_softmax, "after the softmax", 0),
    (lab09.check_generate, broken.generate_without_cropping, "keep the last", 0),
]


@pytest.mark.parametrize(
    ("check", "wrong", "phrase", "numeric"),
    [pytest.param(*row, id=f"{row[0].__name__}-{row[1].__name__}") for row in BROKEN],
)
def test_each_mistake_is_named(check, wrong, phrase, numeric):
    with pytest.raises(LabCheckFailure) as failure:
        check(wrong)
    message = str(failure.value)
    assert phrase in message, message
    if numeric:
        assert "max abs error" in message and "at index (" in message, message
    assert "inputs:" in message, message


def test_a_mistake_no_check_knows_still_gives_the_error_and_where():
    def off_by_a_little(query, key, value, mask=None):
        output, weights = attention(query, key, value, mask)
        output[..., -1, -1] += 0.5  # (..., L, d_v): one number per sequence is off
        return output, weights

    with pytest.raises(LabCheckFailure, match="differs from the correct result") as failure:
        lab01.check_attention(off_by_a_little)
    assert "attention() output" in str(failure.value)
    assert "max abs error 0.5 at index (0, 3, 7)" in str(failure.value)


def test_a_crash_in_the_learners_code_names_the_function_and_inputs():
    def crashes(query, key, value, mask=None):
        return query @ key  # (..., L, d_k) @ (..., S, d_k): wrong shapes

    with pytest.raises(LabCheckFailure, match=r"attention\(\) raised RuntimeError") as failure:
        lab01.check_attention(crashes)
    assert "inputs: query (2, 4, 8) float32" in str(failure.value)


def test_lab07_a_mistake_no_check_knows_still_gives_the_error_and_where():
    def rope_off_by_a_little(x, theta=10000.0):
        out = broken.rope_correct(x, theta)
        out[..., -1, -1] += 0.5  # (..., T, D): the last feature of the last position is off
        return out

    class RMSNormTwiceTheGain(broken.LearnerRMSNorm):
        def forward(self, x):
            return super().forward(x) * self.weight

    with pytest.raises(LabCheckFailure, match=r"rope\(\): differs from the correct") as failure:
        lab07.check_rope(rope_off_by_a_little)
    assert re.search(r"max abs error 0\.5 at index \(\d, 0, 4, 7\)", str(failure.value))
    with pytest.raises(LabCheckFailure, match=r"forward\(\): differs from the correct") as failure:
        lab07.check_rmsnorm(RMSNormTwiceTheGain)
    assert "max abs error" in str(failure.value) and "inputs: dim 8, eps 0.01" in str(failure.value)


# lab 10's rows, with ids that carry the lab's name (pytest -k lab10)
BROKEN_LAB10 = [
    (lab10.check_online_softmax_attention, broken.online_without_rescale, "are not rescaled", 1),
    (
        lab10.check_online_softmax_attention,
        broken.online_rescales_only_the_sum,
        "only the running sum l is rescaled",
        1,
    ),
    (
        lab10.check_online_softmax_attention,
        broken.online_rescales_only_the_values,
        "only the running weighted sum of values is rescaled",
        1,
    ),
    (lab10.check_online_softmax_attention, broken.online_inverted_rescale, "is inverted", 1),
    (
        lab10.check_online_softmax_attention,
        broken.online_without_division,
        "the final division by the running sum is missing",
        1,
    ),
    (lab10.check_online_softmax_attention, broken.online_without_scale, "not divided by √D", 1),
    (lab10.check_online_softmax_attention, broken.online_without_max, "exp overflows", 0),
    (lab10.check_online_softmax_attention, broken.online_full_softmax, "not read in blocks", 0),
    (lab10.check_online_softmax_attention, broken.online_sdpa, "scaled_dot_product_attention", 0),
    (lab10.check_cached_decode_step, broken.decode_position_plus_one, "is off by one", 1),
    (lab10.check_cached_decode_step, broken.decode_position_minus_one, "is off by one", 1),
    (
        lab10.check_cached_decode_step,
        broken.decode_appends_after_attention,
        "the new token does not see itself",
        1,
    ),
    (
        lab10.check_cached_decode_step,
        broken.decode_caches_unrotated_keys,
        "the keys in the cache are not rotated",
        1,
    ),
    (lab10.check_cached_decode_step, broken.decode_query_not_rotated, "query is not rotated", 1),
    (lab10.check_cached_decode_step, broken.decode_query_one_ahead, "the query is rotated at", 1),
    (lab10.check_cached_decode_step, broken.decode_rotates_values, "the values are rotated", 1),
    (lab10.check_cached_decode_step, broken.decode_returns_output_only, "expected a tuple", 0),
    (lab10.check_cached_decode_step, broken.decode_grows_cache_in_place, "cache_k in place", 0),
]


@pytest.mark.parametrize(
    ("check", "wrong", "phrase", "numeric"),
    [pytest.param(*row, id=f"lab10-{row[1].__name__}") for row in BROKEN_LAB10],
)
def test_lab10_each_mistake_is_named(check, wrong, phrase, numeric):
    test_each_mistake_is_named(check, wrong, phrase, numeric)


def test_lab10_the_position_mistake_names_both_positions():
    with pytest.raises(LabCheckFailure) as failure:
        lab10.check_cached_decode_step(broken.decode_position_plus_one)
    message = str(failure.value)
    assert "new_cache_k: the new token's position is off by one" in message, message
    assert "its key is rotated at 1, not at position = 0" in message, message
    assert "step 1 of 5 from an empty cache" in message, message


def test_lab10_blocks_that_hold_every_key_may_be_one_softmax():
    """With block_size >= T_k one block is the whole key axis: a plain softmax is blocked."""
    seen = []

    def full_softmax_when_one_block(q, k, v, block_size):
        seen.append(block_size >= k.shape[-2])
        if block_size >= k.shape[-2]:
            return broken.online_full_softmax(q, k, v, block_size)
        return broken.online_correct(q, k, v, block_size)

    lab10.check_online_softmax_attention(full_softmax_when_one_block)
    assert True in seen and False in seen


def test_lab10_a_mistake_no_check_knows_still_gives_the_error_and_where():
    def online_off_by_a_little(q, k, v, block_size):
        out = broken.online_correct(q, k, v, block_size)
        out[..., -1, -1] += 0.5  # (B, H, T_q, D_v): the last query's last feature is off
        return out

    def decode_off_by_a_little(x_new, cache_k, cache_v, w_q, w_k, w_v, position):
        out, new_k, new_v = broken.decode_correct(x_new, cache_k, cache_v, w_q, w_k, w_v, position)
        return out + 0.5, new_k, new_v  # (B, 1, D)

    with pytest.raises(LabCheckFailure, match=r"online_softmax_attention\(\): differs") as caught:
        lab10.check_online_softmax_attention(online_off_by_a_little)
    assert re.search(r"max abs error 0\.5 at index \(\d, \d, 4, 6\)", str(caught.value))
    assert "block_size 4" in str(caught.value)
    with pytest.raises(LabCheckFailure, match=r"output: differs from the correct") as failure:
        lab10.check_cached_decode_step(decode_off_by_a_little)
    assert re.search(r"max abs error 0\.5 at index \(\d, 0, \d\)", str(failure.value))
    assert "step 1 of 5 from an empty cache, position 0" in str(failure.value)


def test_lab10_the_decode_check_starts_from_an_empty_cache_and_from_a_prompts():
    seen = []

    def recording(x_new, cache_k, cache_v, w_q, w_k, w_v, position):
        seen.append((cache_k.shape[1], position))
        return broken.decode_correct(x_new, cache_k, cache_v, w_q, w_k, w_v, position)

    lab10.check_cached_decode_step(recording)
    assert all(length == position for length, position in seen), seen
    assert (0, 0) in seen and (4, 4) in seen and len(seen) == 12, seen
