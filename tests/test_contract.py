"""The stage contract: registry, sequence models and their attention maps."""

import pytest
import torch

from transformer import ModelConfig, SequenceModel, UnknownStageError, get_stage, list_stages

VERSIONS = [stage.version for stage in list_stages()]
CAUSAL_ONLY = {"v5"}  # decoder-only: a GPT has no non-causal form


def test_registry_lists_the_stages_in_order_with_ideas():
    assert VERSIONS[:4] == ["v1", "v2", "v3", "v4"]
    assert get_stage("v1").module == "transformer.v1_basic_attention"
    assert get_stage("v2").module == "transformer.v2_multihead"
    assert get_stage("v3").module == "transformer.v3_positional"
    assert get_stage("v4").module == "transformer.v4_block"
    for stage in list_stages():
        assert callable(getattr(stage.load(), "build_sequence_model", None)), stage.module
        assert stage.idea and "\n" not in stage.idea and len(stage.idea) < 120


def test_unknown_version_lists_the_known_ones():
    with pytest.raises(
        UnknownStageError, match=r"version: unknown stage 'v9'; known stages: v1, v2, v3, v4"
    ):
        get_stage("v9")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("causal", [True, False])
def test_model_maps_tokens_to_logits_and_records_attention(version, causal):
    config = ModelConfig(vocab_size=11, d_model=16, num_heads=4, num_layers=2, causal=causal)
    if version in CAUSAL_ONLY and not causal:
        with pytest.raises(ValueError, match=r"causal: expected True"):
            get_stage(version).build_model(config)
        return
    torch.manual_seed(0)
    model = get_stage(version).build_model(config)
    assert isinstance(model, SequenceModel)
    tokens = torch.randint(0, 11, (3, 7))
    logits = model(tokens)
    assert logits.shape == (3, 7, 11)
    heads = 1 if version == "v1" else 4
    assert len(model.attention_maps) == 2
    for weights in model.attention_maps:
        assert weights.shape == (3, heads, 7, 7)
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, heads, 7))
        above_diagonal = weights.triu(1)
        assert (above_diagonal == 0).all() if causal else (above_diagonal > 0).any()


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
    model = get_stage(version).build_model(ModelConfig(vocab_size=5, d_model=16, num_heads=2))
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


@pytest.mark.parametrize("version", ["v2", "v3", "v4", "v5"])
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
