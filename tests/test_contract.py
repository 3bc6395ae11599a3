"""The stage contract: registry, sequence models and their attention maps."""

import importlib

import pytest
import torch

from transformer import (
    NEXT_TOKEN,
    ModelConfig,
    SequenceModel,
    UnknownStageError,
    get_stage,
    list_stages,
)

VERSIONS = [stage.version for stage in list_stages(NEXT_TOKEN)]  # the decoder-only stages
CAUSAL_ONLY = {"v5", "v7"}  # decoder-only: a GPT has no non-causal form


def test_registry_lists_the_stages_in_order_with_ideas():
    assert VERSIONS[:4] == ["v1", "v2", "v3", "v4"]
    assert get_stage("v1").module == "transformer.v1_basic_attention"
    assert get_stage("v2").module == "transformer.v2_multihead"
    assert get_stage("v3").module == "transformer.v3_positional"
    assert get_stage("v4").module == "transformer.v4_block"
    for stage in list_stages(NEXT_TOKEN):
        assert callable(getattr(stage.load(), "build_sequence_model", None)), stage.module
    for stage in list_stages():
        assert stage.idea and "\n" not in stage.idea and len(stage.idea) < 120


def test_unknown_version_lists_the_known_ones():
    with pytest.raises(
        UnknownStageError, match=r"version: unknown stage 'v9'; known stages: v1, v2, v3, v4"
    ):
        get_stage("v9")


def heads_of(version: str) -> int | None:
    """The 4 heads the tests ask for, or None (the default, 1) for v1, which has one head."""
    return None if version == "v1" else 4


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("causal", [True, False])
def test_model_maps_tokens_to_logits_and_returns_attention_on_request(version, causal):
    heads = heads_of(version)
    config = ModelConfig(vocab_size=11, d_model=16, num_heads=heads, num_layers=2, causal=causal)
    if version in CAUSAL_ONLY and not causal:
        with pytest.raises(ValueError, match=rf"causal: expected True for {version}"):
            get_stage(version).build_model(config)
        return
    torch.manual_seed(0)
    model = get_stage(version).build_model(config).eval()
    assert isinstance(model, SequenceModel)
    tokens = torch.randint(0, 11, (3, 7))
    logits = model(tokens)  # the fast path: no weights
    assert isinstance(logits, torch.Tensor) and logits.shape == (3, 7, 11)
    explicit, maps = model(tokens, return_attention=True)
    torch.testing.assert_close(explicit, logits, atol=1e-5, rtol=1e-5)  # same numbers
    assert len(maps) == 2
    for weights in maps:
        assert weights.shape == (3, heads or 1, 7, 7)
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, heads or 1, 7))
        above_diagonal = weights.triu(1)
        assert (above_diagonal == 0).all() if causal else (above_diagonal > 0).any()


@pytest.mark.parametrize("version", [v for v in VERSIONS if v != "v1"])
def test_training_takes_the_fused_path(version, monkeypatch):
    """Without return_attention, no stage after v1 computes the (T, T) weights."""
    core = importlib.import_module("transformer.v1_basic_attention.attention")

    model = get_stage(version).build_model(ModelConfig(vocab_size=5, d_model=8, num_heads=2))
    monkeypatch.setattr(core, "softmax_over_keys", lambda s: pytest.fail("explicit path taken"))
    model(torch.randint(0, 5, (2, 6))).sum().backward()


def test_v1_has_no_fused_path_and_says_so(monkeypatch):
    """v1 is the explicit computation itself: the weights are computed, then dropped."""
    core = importlib.import_module("transformer.v1_basic_attention.attention")

    calls = []
    real = core.softmax_over_keys
    monkeypatch.setattr(core, "softmax_over_keys", lambda s: calls.append(1) or real(s))
    get_stage("v1").build_model(ModelConfig(vocab_size=5, num_layers=2))(torch.zeros(1, 3).long())
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("version", "config", "message"),
    [
        (
            "v1",
            ModelConfig(vocab_size=5, num_heads=4),
            "num_heads: expected 1 for v1 (basic attention has one head; heads come in v2), got 4",
        ),
        ("v1", ModelConfig(vocab_size=5, dropout=0.1), "dropout: expected 0.0 for v1"),
        (
            "v1",
            ModelConfig(vocab_size=5, max_len=8),
            "max_len: expected it unset, since v1 has no such setting",
        ),
        (
            "v2",
            ModelConfig(vocab_size=5, max_len=8),
            "max_len: expected it unset, since v2 has no such setting",
        ),
        (
            "v3",
            ModelConfig(vocab_size=5, options={"norm_first": True}),
            "norm_first: expected it unset, since v3 has no such setting and would ignore it, "
            "got True; v3's settings: d_model, num_heads, num_layers, dropout, causal, max_len, "
            "positional, scale_embeddings",
        ),
        ("v4", ModelConfig(vocab_size=5, options={"norm_first": 1}), "norm_first: expected a bool"),
        (
            "v4",
            ModelConfig(vocab_size=5, options={"activation": "tanh"}),
            "activation: expected 'relu' or 'gelu' for v4, got 'tanh'",
        ),
        ("v5", ModelConfig(vocab_size=5, causal=False), "causal: expected True for v5"),
        ("v7", ModelConfig(vocab_size=5, causal=False), "causal: expected True for v7"),
        (
            "v7",
            ModelConfig(vocab_size=5, options={"positions": "sinusoidal"}),
            "positions: expected 'learned' or 'rope' for v7, got 'sinusoidal'",
        ),
        (
            "v7",
            ModelConfig(vocab_size=5, num_heads=4, options={"num_kv_heads": 3}),
            "num_kv_heads: expected a divisor of num_heads=4 (each key/value head serves "
            "num_heads / num_kv_heads query heads), got 3",
        ),
        ("v7", ModelConfig(vocab_size=5, options={"rope_theta": 0.5}), "rope_theta: expected"),
        (
            "v5",
            ModelConfig(vocab_size=5, options={"attention_dropout": 1.5}),
            "attention_dropout: expected a float in [0, 1), got 1.5",
        ),
        (
            "v2",
            ModelConfig(vocab_size=5, d_model=10),
            "d_model: expected a multiple of num_heads=4",
        ),
    ],
)
def test_a_setting_the_stage_would_ignore_or_cannot_take_is_an_error(version, config, message):
    with pytest.raises((TypeError, ValueError)) as caught:
        get_stage(version).build_model(config)
    assert message in str(caught.value)


def test_architecture_is_what_runs():
    v1 = get_stage("v1").architecture(ModelConfig(vocab_size=5))
    assert v1 == {
        "vocab_size": 5,
        "d_model": 64,
        "num_heads": 1,
        "num_layers": 1,
        "dropout": 0.0,
        "causal": True,
    }
    v4 = get_stage("v4").architecture(ModelConfig(vocab_size=5, options={"norm_first": True}))
    assert v4["norm_first"] is True and v4["activation"] == "relu" and v4["max_len"] == 512


@pytest.mark.parametrize(
    ("version", "option", "value", "read"),
    [
        ("v3", "positional", "learned", lambda m: type(m.positions).__name__),
        ("v4", "norm_first", True, lambda m: m.layers[0].norm_first),
        ("v4", "ff_multiplier", 2, lambda m: m.layers[0].linear1.out_features),
        ("v5", "attention_dropout", 0.3, lambda m: m.gpt.h[0].self_attn.dropout),
        ("v5", "residual_dropout", 0.2, lambda m: m.gpt.h[0].dropout1.p),
        ("v5", "embedding_dropout", 0.4, lambda m: m.gpt.drop.p),
        ("v7", "positions", "learned", lambda m: type(m.gpt.wpe).__name__),
        ("v7", "norm", "layernorm", lambda m: type(m.gpt.ln_f).__name__),
        ("v7", "mlp", "gelu", lambda m: type(m.gpt.h[0].mlp).__name__),
        ("v7", "num_kv_heads", 2, lambda m: m.gpt.h[0].self_attn.num_kv_heads),
        ("v7", "rope_theta", 500.0, lambda m: m.gpt.h[0].self_attn.rotary.theta),
        ("v7", "bias", True, lambda m: m.gpt.h[0].self_attn.in_proj_bias is not None),
        ("v7", "tie_embeddings", False, lambda m: m.gpt.lm_head.weight is m.gpt.wte.weight),
        ("v7", "attention_dropout", 0.3, lambda m: m.gpt.h[0].self_attn.dropout),
    ],
)
def test_stage_options_reach_the_model(version, option, value, read):
    stage = get_stage(version)
    default = read(stage.build_model(ModelConfig(vocab_size=5, d_model=8, num_heads=2)))
    chosen = read(
        stage.build_model(
            ModelConfig(vocab_size=5, d_model=8, num_heads=2, options={option: value})
        )
    )
    assert chosen != default
    assert chosen in (value, "LearnedPositionalEmbedding", 2 * 8, "LayerNorm", "GELUFeedForward")


def test_config_round_trips_and_stage_arguments_are_checked():
    config = ModelConfig(vocab_size=5, num_heads=2, options={"positional": "learned"})
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(UnknownStageError, match=r"version: unknown stage \['v1'\]"):
        get_stage(["v1"])
    with pytest.raises(TypeError, match="config: expected a ModelConfig, got dict"):
        get_stage("v2").build_model({"vocab_size": 5})


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_model_has_no_positional_information(version):
    """Without positions and without a causal mask, permuting tokens permutes the logits.

    From v3 on it does not: see test_v3_positional.test_positions_make_the_model_see_order.
    """
    torch.manual_seed(0)
    model = get_stage(version).build_model(ModelConfig(vocab_size=9, d_model=8, causal=False))
    tokens = torch.randint(0, 9, (2, 6))
    perm = torch.randperm(6)
    torch.testing.assert_close(model(tokens)[:, perm], model(tokens[:, perm]))


@pytest.mark.parametrize("version", VERSIONS)
def test_model_trains(version):
    """A few optimiser steps lower the loss on a fixed batch: gradients reach every parameter."""
    torch.manual_seed(0)
    heads = None if version == "v1" else 2
    model = get_stage(version).build_model(ModelConfig(vocab_size=5, d_model=16, num_heads=heads))
    tokens = torch.randint(0, 5, (8, 6))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(tokens).flatten(0, 1), tokens.flatten())
        optimiser.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in model.parameters())
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_v7_derives_its_key_value_heads_and_records_them():
    """Grouped-query attention by default: half as many key/value heads, recorded as a number."""
    v7 = get_stage("v7")
    assert v7.architecture(ModelConfig(vocab_size=5, num_heads=4))["num_kv_heads"] == 2
    assert v7.architecture(ModelConfig(vocab_size=5, num_heads=3, d_model=6))["num_kv_heads"] == 3
    chosen = ModelConfig(vocab_size=5, num_heads=4, options={"num_kv_heads": 1})
    assert v7.architecture(chosen)["num_kv_heads"] == 1
    assert v7.build_model(chosen).gpt.h[0].self_attn.num_kv_heads == 1


@pytest.mark.parametrize("version", ["v2", "v3", "v4", "v5", "v7"])
def test_model_uses_config_dropout_only_in_training(version):
    config = ModelConfig(vocab_size=5, d_model=8, num_heads=2, dropout=0.5)
    model = get_stage(version).build_model(config)
    tokens = torch.randint(0, 5, (2, 6))
    model.eval()
    assert torch.equal(model(tokens), model(tokens))
    model.train()
    torch.manual_seed(1)
    first = model(tokens)
    torch.manual_seed(2)
    assert not torch.equal(first, model(tokens))
