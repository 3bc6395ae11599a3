"""v4_block against nn.TransformerEncoderLayer and nn.TransformerEncoder, with their weights."""

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tests.reference import assert_close
from transformer import ModelConfig
from transformer.v2_multihead import MultiHeadAttention
from transformer.v4_block import TransformerBlock, TransformerEncoder, TransformerModel

ACTIVATIONS = ["relu", "gelu", F.gelu, nn.GELU(approximate="tanh")]


@dataclass
class BlockCase:
    kwargs: dict  # constructor arguments shared by both modules
    src: Tensor
    src_mask: Tensor | None
    padding: Tensor | None
    is_causal: bool
    label: str


def block_case(seed: int, dtype: torch.dtype = torch.float32) -> BlockCase:
    """A random configuration: sizes, activation, norm placement, layout, bias and masks."""
    gen = torch.Generator().manual_seed(seed)

    def pick(n: int) -> int:
        return int(torch.randint(0, n, (1,), generator=gen))

    heads = [1, 2, 4][pick(3)]
    d_model = heads * (2 + pick(6))
    batch_first, batched = pick(2) == 1, pick(5) > 0
    kwargs = {
        "d_model": d_model,
        "nhead": heads,
        "dim_feedforward": 1 + pick(40),
        "dropout": 0.0,
        "activation": ACTIVATIONS[seed % 4],
        "layer_norm_eps": [1e-5, 1e-6, 1e-3][pick(3)],
        "batch_first": batch_first,
        "norm_first": seed % 8 >= 4,  # every activation meets both norm placements
        "bias": pick(4) > 0,
        "dtype": dtype,
    }
    n, s = 1 + pick(3), 1 + pick(7)
    shape = (n, s, d_model) if batch_first else (s, n, d_model)
    src = torch.randn(shape if batched else (s, d_model), generator=gen, dtype=dtype)
    mask_kind = ["none", "bool", "float", "causal"][pick(4)]
    src_mask, is_causal = None, False
    if mask_kind == "bool":
        src_mask = torch.rand(s, s, generator=gen) > 0.7
        src_mask[:, 0] = False  # every query keeps one key
    elif mask_kind == "float":
        src_mask = torch.randn(s, s, generator=gen, dtype=dtype)
    elif mask_kind == "causal":
        src_mask, is_causal = nn.Transformer.generate_square_subsequent_mask(s, dtype=dtype), True
    padding = None
    if batched and pick(2):
        padding = torch.rand(n, s, generator=gen) > 0.7
        padding[:, 0] = False
    label = f"seed={seed} {mask_kind} padding={padding is not None} batched={batched}"
    return BlockCase(kwargs, src, src_mask, padding, is_causal, label)


def pair(case: BlockCase) -> tuple[TransformerBlock, nn.TransformerEncoderLayer]:
    """Our block and PyTorch's, the weights (and random biases) copied from PyTorch's."""
    theirs = nn.TransformerEncoderLayer(**case.kwargs)
    with torch.no_grad():  # PyTorch starts the attention biases at zero; make them count
        for name, param in theirs.named_parameters():
            if name.endswith("bias"):
                param.normal_()
    ours = TransformerBlock(**case.kwargs)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def is_tanh_gelu(activation) -> bool:
    return isinstance(activation, nn.GELU) and activation.approximate == "tanh"


def check_block_against_torch(case: BlockCase, train: bool) -> None:
    ours, theirs = pair(case)
    ours.train(train), theirs.train(train)
    args = (case.src, case.src_mask, case.padding, case.is_causal)
    # PyTorch's eval fast path runs nn.GELU(approximate="tanh") as exact GELU (see below),
    # and returns NaN for a float src_mask next to a bool padding mask (a deprecated mix);
    # there we compare with PyTorch's ordinary path.
    mixed_masks = case.padding is not None and case.src_mask is not None
    mixed_masks = mixed_masks and case.src_mask.dtype != torch.bool
    fast_path = not is_tanh_gelu(case.kwargs["activation"]) and not mixed_masks
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(fast_path)
    try:
        with torch.set_grad_enabled(train):
            assert_close(ours(*args), theirs(*args), case.label)
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


def test_pytorch_fast_path_ignores_tanh_approximation():
    """A PyTorch quirk we do not copy: in eval mode its fused path treats any nn.GELU as exact.

    Ours applies the activation it was given, as PyTorch's own training path does.
    """
    torch.manual_seed(0)
    kwargs = {"d_model": 8, "nhead": 2, "dim_feedforward": 32, "dropout": 0.0, "batch_first": True}
    theirs = nn.TransformerEncoderLayer(**kwargs, activation=nn.GELU(approximate="tanh")).eval()
    with torch.no_grad():
        theirs.linear1.weight.mul_(5.0)  # pre-activations where the two GELUs part
    exact = nn.TransformerEncoderLayer(**kwargs, activation=nn.GELU()).eval()
    exact.load_state_dict(theirs.state_dict())
    ours = TransformerBlock(**kwargs, activation=nn.GELU(approximate="tanh")).eval()
    ours.load_state_dict(theirs.state_dict())
    src = 3 * torch.randn(2, 5, 8)
    with torch.no_grad():
        fast, exact_gelu, slow = theirs(src), exact(src), theirs.train()(src)
    assert_close(fast, exact_gelu, "fast path = exact GELU")
    assert (fast - slow).abs().max() > 1e-4  # ten times the tolerance
    assert_close(ours(src), slow, "ours = PyTorch's training path")


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("seed", range(120))
def test_block_matches_transformer_encoder_layer(seed, train):
    """Both norm placements, all activations, both layouts, masks; train and eval (fast path)."""
    check_block_against_torch(block_case(seed), train)


def test_random_cases_cover_every_combination():
    cases = [block_case(seed) for seed in range(120)]
    seen = {(c.kwargs["norm_first"], str(c.kwargs["activation"])) for c in cases}
    assert len(seen) == 2 * len(ACTIVATIONS)
    assert {c.label.split()[1] for c in cases} == {"none", "bool", "float", "causal"}
    assert any(c.padding is not None for c in cases) and any(c.src.dim() == 2 for c in cases)
    assert {c.kwargs["batch_first"] for c in cases} == {True, False}
    assert {c.kwargs["bias"] for c in cases} == {True, False}


@pytest.mark.parametrize("seed", range(4))
def test_block_float64_and_parameter_gradients_match(seed):
    case = block_case(seed, dtype=torch.float64)
    ours, theirs = pair(case)
    args = (case.src, case.src_mask, case.padding, case.is_causal)
    ours(*args).square().sum().backward()
    theirs(*args).square().sum().backward()
    ours_grads = dict(ours.named_parameters())
    for name, param in theirs.named_parameters():
        assert_close(ours_grads[name].grad, param.grad, f"{case.label} grad {name}")


def test_is_causal_alone_builds_the_causal_mask():
    """PyTorch needs the mask passed with is_causal=True; ours builds it when it is missing."""
    case = block_case(3)
    ours, theirs = pair(case)
    src = torch.randn(2, 5, case.kwargs["d_model"])
    ours.batch_first = theirs.self_attn.batch_first = True
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    assert_close(ours(src, is_causal=True), theirs(src, mask, is_causal=True), "is_causal")
    changed = src.clone()
    changed[:, 3:] += 1.0  # the future changes; the first three outputs must not
    assert_close(ours(changed, is_causal=True)[:, :3], ours(src, is_causal=True)[:, :3], "leak")


def test_block_loads_into_pytorch_and_back():
    ours = TransformerBlock(8, 2, 16)
    theirs = nn.TransformerEncoderLayer(8, 2, 16)
    theirs.load_state_dict(ours.state_dict())
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    assert isinstance(ours.self_attn, MultiHeadAttention)


def test_initialisation_matches_pytorch_for_the_same_seed():
    torch.manual_seed(7)
    theirs = nn.TransformerEncoderLayer(16, 4, 32)
    torch.manual_seed(7)
    ours = TransformerBlock(16, 4, 32)
    for name, param in theirs.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[name], param, atol=0, rtol=0, msg=name)


def test_dropout_acts_only_in_training():
    torch.manual_seed(0)
    block = TransformerBlock(16, 4, 32, dropout=0.5, batch_first=True)
    x = torch.randn(2, 5, 16)
    block.eval()
    assert torch.equal(block(x), block(x))
    block.train()
    assert not torch.equal(block(x), block(x))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("final_norm", [False, True])
def test_stack_matches_transformer_encoder(norm_first, final_norm):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        12, 3, 20, dropout=0.0, batch_first=True, norm_first=norm_first, activation="gelu"
    )
    theirs = nn.TransformerEncoder(
        layer, 3, norm=nn.LayerNorm(12) if final_norm else None, enable_nested_tensor=False
    )
    for param in theirs.parameters():  # the copies start identical; make the layers differ
        nn.init.normal_(param, std=0.3)
    ours_layer = TransformerBlock(12, 3, 20, 0.0, "gelu", batch_first=True, norm_first=norm_first)
    ours = TransformerEncoder(ours_layer, 3, norm=nn.LayerNorm(12) if final_norm else None)
    ours.load_state_dict(theirs.state_dict())
    src, padding = torch.randn(4, 6, 12), torch.rand(4, 6) > 0.7
    padding[:, 0] = False
    mask = nn.Transformer.generate_square_subsequent_mask(6)
    for train in (True, False):
        ours.train(train), theirs.train(train)
        assert_close(ours(src, mask, padding), theirs(src, mask, padding), f"train={train}")
        out, maps = ours.forward_with_attention(src, mask, padding)
        assert_close(out, theirs(src, mask, padding), "with attention")
        assert len(maps) == 3 and maps[0].shape == (4, 3, 6, 6)


def test_stack_layers_are_independent_copies():
    ours = TransformerEncoder(TransformerBlock(8, 2, 16), 2)
    assert ours.layers[0].linear1.weight is not ours.layers[1].linear1.weight
    with torch.no_grad():
        ours.layers[0].linear1.weight.zero_()
    assert ours.layers[1].linear1.weight.abs().sum() > 0


def test_nested_tensor_fast_path_differs_only_at_padding():
    """PyTorch's default eval fast path zeroes padded positions; elsewhere the stacks agree."""
    torch.manual_seed(0)
    theirs = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2)
    ours = TransformerEncoder(TransformerBlock(8, 2, 16, batch_first=True), 2)
    ours.load_state_dict(theirs.state_dict())
    ours.eval(), theirs.eval()
    src = torch.randn(2, 5, 8)
    padding = torch.tensor([[False] * 5, [False, False, False, True, True]])
    with torch.no_grad():
        expected, actual = theirs(src, src_key_padding_mask=padding), ours(src, None, padding)
    kept = ~padding
    assert_close(actual[kept], expected[kept], "unpadded positions")
    assert (expected[padding] == 0).all()


@pytest.mark.parametrize("norm_first", [False, True])
def test_model_is_embedding_positions_stack_and_head(norm_first):
    """TransformerModel equals nn.TransformerEncoder run on embedding + sinusoids."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=11, d_model=16, num_heads=4, num_layers=3, max_len=9)
    model = TransformerModel(config, norm_first=norm_first, activation="gelu").eval()
    reference = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(16, 4, 64, 0.0, "gelu", batch_first=True, norm_first=norm_first),
        3,
        norm=nn.LayerNorm(16) if norm_first else None,
        enable_nested_tensor=False,
    ).eval()
    state = {f"layers.{k}": v for k, v in model.layers.state_dict().items()}
    if norm_first:
        state |= {f"norm.{k}": v for k, v in model.final_norm.state_dict().items()}
    reference.load_state_dict(state)
    tokens = torch.randint(0, 11, (2, 9))
    x = model.positions(model.embed(tokens))  # (B, T, d)
    mask = nn.Transformer.generate_square_subsequent_mask(9)
    expected = model.head(reference(x, mask, is_causal=True))
    assert_close(model(tokens), expected, "model (fused attention)")
    logits, maps = model(tokens, return_attention=True)
    assert_close(logits, expected, "model (explicit attention)")
    assert len(maps) == 3


def train_mode_pair(norm_first: bool, batch_first: bool, **ours_kwargs):
    torch.manual_seed(0)
    reference = nn.TransformerEncoderLayer(
        16, 4, 32, dropout=0.3, batch_first=batch_first, norm_first=norm_first
    )
    ours = TransformerBlock(
        16, 4, 32, dropout=0.3, batch_first=batch_first, norm_first=norm_first, **ours_kwargs
    )
    ours.load_state_dict(reference.state_dict())
    return reference.train(), ours.train()


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_dropout_sits_where_pytorch_puts_it(norm_first, batch_first, causal):
    """In training, with the same seed, the same dropout draws land on the same elements.

    Unbatched input, so that both implementations lay the tensors out alike in memory (with a
    batch, PyTorch's attention output has another layout and the draws land elsewhere).
    """
    reference, ours = train_mode_pair(norm_first, batch_first)
    x = torch.randn(7, 16)  # (S, E) unbatched
    mask = nn.Transformer.generate_square_subsequent_mask(7) if causal else None
    torch.manual_seed(5)
    expected = reference(x, src_mask=mask)
    torch.manual_seed(5)
    assert_close(ours(x, src_mask=mask), expected, "train mode, dropout 0.3")


@pytest.mark.parametrize(
    "moved", [{"feed_forward_dropout": 0.0}, {"attention_dropout": 0.0}, {"attention_dropout": 0.5}]
)
def test_the_dropout_check_catches_a_missing_or_changed_dropout(moved):
    reference, ours = train_mode_pair(True, True, **moved)
    x = torch.randn(7, 16)
    torch.manual_seed(5)
    expected = reference(x)
    torch.manual_seed(5)
    assert not torch.allclose(ours(x), expected, atol=1e-3)
