"""v2 MultiHeadAttention as a drop-in for nn.MultiheadAttention."""

import pytest
import torch
from torch import nn

from tests.reference import assert_close, check_multihead_against_torch, multihead_case
from transformer.v2_multihead import MultiHeadAttention

CASES = range(200)


@pytest.mark.parametrize("seed", CASES)
def test_equals_nn_multihead_attention(seed):
    check_multihead_against_torch(MultiHeadAttention, multihead_case(seed))


def test_random_cases_cover_every_argument():
    labels = " | ".join(multihead_case(seed).label for seed in CASES)
    for needle in [
        "'bias': False",
        "'bias': True",
        "'add_bias_kv': True",
        "'add_zero_attn': True",
        "'kdim': 5",
        "'vdim': 7",
        "'batch_first': True",
        "'batch_first': False",
        "batched=False",
        "batched=True",
        "self=True",
        "attn_mask=bool2d",
        "attn_mask=float2d",
        "attn_mask=bool3d",
        "attn_mask=float3d",
        "attn_mask=causal",
        "kpm=bool",
        "kpm=float",
        "need_weights=False",
        "need_weights=True",
        "avg=False",
        "avg=True",
        "train=True",
        "train=False",
        "grad=False",
    ]:
        assert labels.count(needle) >= 5, needle


STATE_CONFIGS = [
    {},
    {"bias": False},
    {"kdim": 3, "vdim": 5},
    {"add_bias_kv": True, "bias": False},
    {"add_bias_kv": True, "add_zero_attn": True, "kdim": 4},
]


@pytest.mark.parametrize("extra", STATE_CONFIGS)
def test_state_dicts_load_both_ways(extra):
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(8, 2, **extra)
    ours = MultiHeadAttention(8, 2, **extra)
    ref_shapes = {k: v.shape for k, v in reference.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == ref_shapes
    ours.load_state_dict(reference.state_dict())  # strict by default
    for name, tensor in reference.state_dict().items():
        assert torch.equal(ours.state_dict()[name], tensor), name
    torch.manual_seed(1)
    fresh = MultiHeadAttention(8, 2, **extra)
    reference.load_state_dict(fresh.state_dict())
    for name, tensor in fresh.state_dict().items():
        assert torch.equal(reference.state_dict()[name], tensor), name


def test_initialisation_matches_pytorch_for_the_same_seed():
    torch.manual_seed(3)
    reference = nn.MultiheadAttention(16, 4, add_bias_kv=True)
    torch.manual_seed(3)
    ours = MultiHeadAttention(16, 4, add_bias_kv=True)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(ours.state_dict()[name], tensor), name


def test_attributes_match_pytorch():
    reference = nn.MultiheadAttention(12, 3, kdim=4, vdim=6, dropout=0.1, batch_first=True)
    ours = MultiHeadAttention(12, 3, kdim=4, vdim=6, dropout=0.1, batch_first=True)
    for attr in (
        "embed_dim",
        "kdim",
        "vdim",
        "num_heads",
        "head_dim",
        "dropout",
        "batch_first",
        "_qkv_same_embed_dim",
        "add_zero_attn",
    ):
        assert getattr(ours, attr) == getattr(reference, attr), attr


@pytest.mark.parametrize("need_weights", [True, False])
def test_dropout_matches_pytorch_under_the_same_seed(need_weights):
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(16, 4, dropout=0.3, batch_first=True)
    ours = MultiHeadAttention(16, 4, dropout=0.3, batch_first=True)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 6, 16)
    torch.manual_seed(42)
    ref_out, ref_w = reference(x, x, x, need_weights=need_weights)
    torch.manual_seed(42)
    out, w = ours(x, x, x, need_weights=need_weights)
    assert_close(out, ref_out, "output")
    if need_weights:
        assert_close(w, ref_w, "weights")
    ours.eval()
    assert torch.equal(ours(x, x, x)[0], ours(x, x, x)[0]), "eval mode must not drop out"


@pytest.mark.parametrize("seed", range(10))
def test_gradients_match_pytorch(seed):
    case = multihead_case(seed)
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(**case.init)
    ours = MultiHeadAttention(**case.init)
    ours.load_state_dict(reference.state_dict())
    for module in (reference, ours):
        output, _ = module(*case.inputs, **case.call)
        (output * torch.linspace(-1, 1, output.shape[-1])).sum().backward()
    ref_grads = dict(reference.named_parameters())
    for name, param in ours.named_parameters():
        assert_close(param.grad, ref_grads[name].grad, f"grad of {name} [{case.label}]")


# ---- fully blocked rows: our documented choice ----


def blocked_row_setup():
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(8, 2, batch_first=True)
    with torch.no_grad():
        reference.out_proj.bias.normal_()
    ours = MultiHeadAttention(8, 2, batch_first=True)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 4, 8)
    blocked = torch.zeros(4, 4, dtype=torch.bool)
    blocked[2] = True  # query 2 may see nothing
    return reference, ours, x, blocked


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_fully_blocked_row_gives_zero_weights_and_the_output_bias(need_weights, training):
    _, ours, x, blocked = blocked_row_setup()
    ours.train(training)
    output, weights = ours(x, x, x, attn_mask=blocked, need_weights=need_weights)
    assert_close(output[:, 2], ours.out_proj.bias.expand(2, 8), "blocked row output")
    if need_weights:
        assert torch.equal(weights[:, 2], torch.zeros(2, 4))


def test_fully_blocked_row_matches_pytorch_sdpa_path():
    reference, ours, x, blocked = blocked_row_setup()
    ref_output, _ = reference(x, x, x, attn_mask=blocked, need_weights=False)
    for need_weights in (True, False):
        output, _ = ours(x, x, x, attn_mask=blocked, need_weights=need_weights)
        assert_close(output, ref_output, f"output (need_weights={need_weights})")


def test_fully_blocked_row_differs_from_pytorch_weights_path_on_purpose():
    """PyTorch returns NaN here with need_weights=True; we return zeros (documented)."""
    reference, ours, x, blocked = blocked_row_setup()
    ref_output, ref_weights = reference(x, x, x, attn_mask=blocked)
    assert ref_output[:, 2].isnan().all() and ref_weights[:, 2].isnan().all()
    output, weights = ours(x, x, x, attn_mask=blocked)
    assert torch.isfinite(output).all() and torch.isfinite(weights).all()
    assert_close(output[:, [0, 1, 3]], ref_output[:, [0, 1, 3]], "unblocked rows")


def test_fully_blocked_row_has_finite_gradients():
    _, ours, x, blocked = blocked_row_setup()
    x = x.clone().requires_grad_()
    float_mask = torch.zeros(4, 4).masked_fill(blocked, float("-inf"))
    output, _ = ours(x, x, x, attn_mask=float_mask)
    output.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in ours.parameters())


def test_is_causal_quirk_of_pytorch():
    """With bias_k and is_causal, PyTorch's two paths disagree; ours follows attn_mask."""
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(8, 2, add_bias_kv=True, batch_first=True)
    ours = MultiHeadAttention(8, 2, add_bias_kv=True, batch_first=True)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 8)
    causal = torch.ones(3, 3, dtype=torch.bool).triu(1)
    explicit, _ = reference(x, x, x, attn_mask=causal, need_weights=True, is_causal=True)
    hinted, _ = reference(x, x, x, attn_mask=causal, need_weights=False, is_causal=True)
    assert (explicit - hinted).abs().max() > 1e-2  # PyTorch's own paths differ here
    for need_weights in (True, False):
        output, _ = ours(x, x, x, attn_mask=causal, need_weights=need_weights, is_causal=True)
        assert_close(output, explicit, f"output (need_weights={need_weights})")
