"""v3_positional: the paper's sinusoidal formula, learned positions, and the stage's model."""

import math
import warnings

import pytest
import torch

from transformer import ModelConfig, get_stage
from transformer.v2_multihead import MultiHeadAttention
from transformer.v3_positional import (
    LearnedPositionalEmbedding,
    PositionalModel,
    SinusoidalPositionalEncoding,
    sinusoidal_encoding,
)
from transformer_teaching import positions


def paper_formula(pos: int, column: int, d_model: int) -> float:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)), in Python."""
    two_i = column - column % 2
    angle = pos / 10000 ** (two_i / d_model)
    return math.sin(angle) if column % 2 == 0 else math.cos(angle)


TABLE_SIZES = [(1, 1), (7, 2), (50, 16), (128, 63), (512, 64)]


def check_table_against_formula(encoding_fn, max_len: int, d_model: int) -> None:
    table = encoding_fn(max_len, d_model)
    assert table.shape == (max_len, d_model) and table.dtype == torch.float32
    expected = torch.tensor(
        [[paper_formula(p, c, d_model) for c in range(d_model)] for p in range(max_len)]
    )
    torch.testing.assert_close(table, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("max_len", "d_model"), TABLE_SIZES)
def test_sinusoidal_table_is_the_paper_formula_entry_by_entry(max_len, d_model):
    check_table_against_formula(sinusoidal_encoding, max_len, d_model)


def test_sinusoidal_values_worked_by_hand():
    table = sinusoidal_encoding(3, 4)  # columns: sin(p), cos(p), sin(p/100), cos(p/100)
    assert table[0].tolist() == [0.0, 1.0, 0.0, 1.0]
    expected = [math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)]
    torch.testing.assert_close(table[2], torch.tensor(expected), atol=1e-7, rtol=0)


def test_sinusoidal_relative_positions_are_a_rotation():
    """PE(pos + k) is a fixed linear map of PE(pos): the property the paper chose it for."""
    d_model, k = 8, 5
    table = sinusoidal_encoding(40, d_model).double()
    shifted = table[k:]  # (35, d)
    solution = torch.linalg.lstsq(table[:-k], shifted).solution  # (d, d)
    torch.testing.assert_close(table[:-k] @ solution, shifted, atol=1e-6, rtol=0)  # float32 table


def test_sinusoidal_module_adds_the_first_seq_len_rows_and_saves_nothing():
    module = SinusoidalPositionalEncoding(max_len=10, d_model=6)
    x = torch.randn(2, 4, 6)
    torch.testing.assert_close(module(x), x + sinusoidal_encoding(10, 6)[:4])
    assert list(module.parameters()) == [] and module.state_dict() == {}


def test_learned_embedding_is_a_trainable_table():
    torch.manual_seed(0)
    module = LearnedPositionalEmbedding(max_len=10, d_model=6)
    assert module.weight.shape == (10, 6) and module.weight.requires_grad
    assert 0.01 < module.weight.std().item() < 0.03  # GPT-2's N(0, 0.02²)
    x = torch.randn(2, 4, 6)
    module(x).sum().backward()
    assert (module.weight.grad[:4] == 2).all() and (module.weight.grad[4:] == 0).all()


@pytest.mark.parametrize("module_cls", [SinusoidalPositionalEncoding, LearnedPositionalEmbedding])
def test_exceeding_max_len_is_a_clear_error(module_cls):
    module = module_cls(max_len=5, d_model=4)
    module(torch.zeros(1, 5, 4))  # exactly max_len is fine
    with pytest.raises(ValueError, match=r"x: expected seq_len <= max_len=5, got seq_len=6"):
        module(torch.zeros(1, 6, 4))


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_model_rejects_sequences_longer_than_max_len(positional):
    model = PositionalModel(ModelConfig(vocab_size=5, max_len=8), positional=positional)
    model(torch.zeros(1, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"tokens: expected seq_len <= max_len=8, got seq_len=9"):
        model(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_model_is_v2_attention_on_embedding_plus_positions(seed, positional):
    """Rebuilt by hand from nn.MultiheadAttention: embed + PE -> attention layers -> head."""
    gen = torch.Generator().manual_seed(seed)
    heads = [1, 2, 4][seed % 3]
    config = ModelConfig(
        vocab_size=7 + seed,
        d_model=4 * heads,
        num_heads=heads,
        num_layers=1 + seed % 3,
        causal=seed % 2 == 0,
        max_len=12,
    )
    torch.manual_seed(seed)
    model = PositionalModel(config, positional=positional, scale_embeddings=seed % 4 == 1).eval()
    seq_len = int(torch.randint(1, 13, (1,), generator=gen))
    tokens = torch.randint(0, config.vocab_size, (3, seq_len), generator=gen)

    scale = math.sqrt(config.d_model) if seed % 4 == 1 else 1.0
    table = (
        sinusoidal_encoding(12, config.d_model)
        if positional == "sinusoidal"
        else model.positions.weight.detach()
    )
    x = model.embed.weight[tokens] * scale + table[:seq_len]  # (B, T, d)
    blocked = torch.ones(seq_len, seq_len, dtype=torch.bool).triu(1) if config.causal else None
    for layer in model.layers:
        reference = torch.nn.MultiheadAttention(config.d_model, heads, batch_first=True)
        reference.load_state_dict(layer.state_dict())
        x = reference(x, x, x, attn_mask=blocked, need_weights=False)[0]
    expected = model.head(x)
    torch.testing.assert_close(model(tokens), expected, atol=1e-5, rtol=1e-5)
    assert isinstance(model.layers[0], MultiHeadAttention)


def test_positions_make_the_model_see_order():
    """v2 without a causal mask is blind to order; v3 is not (compare test_contract)."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=9, d_model=8, causal=False)
    model = get_stage("v3").build_model(config)
    tokens = torch.randint(0, 9, (2, 6))
    perm = torch.tensor([1, 0, 2, 3, 4, 5])
    difference = (model(tokens)[:, perm] - model(tokens[:, perm])).abs().max()
    assert difference > 1e-3


def test_bad_positional_kind_names_the_choices():
    with pytest.raises(
        ValueError, match=r"positional: expected 'sinusoidal' or 'learned' for v3, got 'rotary'"
    ):
        PositionalModel(ModelConfig(vocab_size=5), positional="rotary")


def test_dot_products_of_positions_depend_only_on_their_distance():
    """PE(p)·PE(p+k) = Σ_i cos(k·ω_i), the same for every p (the measurement tutorial 03 quotes)."""
    result = positions.measure(max_len=40, d_model=16)
    for offset, stats in result["dot_by_offset"].items():
        k = int(offset)
        closed_form = sum(math.cos(k / 10000 ** (2 * i / 16)) for i in range(8))
        assert stats["mean"] == pytest.approx(closed_form, abs=1e-5)
        assert stats["spread"] < 1e-5


def test_the_encoding_figure_is_drawn_without_warnings(tmp_path):
    """seaborn's ``center=`` path calls a deprecated colormap method; the figure avoids it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        positions.plot(tmp_path / "encoding.png", max_len=16, d_model=8)
    assert (tmp_path / "encoding.png").stat().st_size > 1000
