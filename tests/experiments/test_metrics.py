"""Metrics on hand-made inputs whose answers are known."""

import pytest
import torch

from transformer.experiments.metrics import (
    accuracy,
    attention_mass,
    seen_token_guess,
    similar_vs_dissimilar,
    uniform_attention_mass,
)
from transformer.experiments.tasks import IGNORE


def test_accuracy_counts_only_scored_positions():
    targets = torch.tensor([[IGNORE, 1, 2, IGNORE]])
    logits = torch.zeros(1, 4, 3)
    logits[0, 0, 0] = logits[0, 1, 1] = logits[0, 2, 0] = logits[0, 3, 2] = 5.0
    assert accuracy(logits, targets) == 0.5  # position 1 right, position 2 wrong


def test_attention_mass_per_head():
    needed = torch.zeros(1, 3, 3, dtype=torch.bool)
    needed[0, 1, 0] = needed[0, 2, 1] = True
    targets = torch.tensor([[IGNORE, 5, 5]])
    weights = torch.zeros(1, 2, 3, 3)
    weights[0, 0, 1, 0] = weights[0, 0, 2, 1] = 1.0  # head 0 looks exactly where needed
    weights[0, 1, 1, 1] = 1.0  # head 1: query 1 looks at itself (0 on needed)
    weights[0, 1, 2] = torch.tensor([0.5, 0.5, 0.0])  # query 2: half on needed key 1
    weights[0, :, 0, 2] = 1.0  # query 0 is not scored, whatever it does
    assert attention_mass(weights, needed, targets) == pytest.approx([1.0, 0.25])


def test_uniform_attention_mass_under_a_causal_mask():
    needed = torch.zeros(1, 3, 3, dtype=torch.bool)
    needed[0, 1, 0] = needed[0, 2, 0] = True
    targets = torch.tensor([[IGNORE, 1, 1]])
    # query 1 sees 2 keys (1/2 on key 0), query 2 sees 3 keys (1/3 on key 0)
    assert uniform_attention_mass(needed, targets) == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert uniform_attention_mass(needed, targets, causal=False) == pytest.approx(1 / 3)


def test_similar_vs_dissimilar_compares_within_rows():
    tokens = torch.tensor([7, 8, 7, 8])
    weights = torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.9, 0.1, 0.0, 0.0],  # no earlier 8: row left out (its big weight is positional)
            [0.5, 0.2, 0.3, 0.0],  # similar: key 0 (0.5); dissimilar: key 1 (0.2)
            [0.1, 0.3, 0.2, 0.4],  # similar: key 1 (0.3); dissimilar: keys 0, 2 (0.15)
        ]
    )
    similar, dissimilar = similar_vs_dissimilar(weights, tokens)
    assert similar == pytest.approx((0.5 + 0.3) / 2)
    assert dissimilar == pytest.approx((0.2 + 0.15) / 2)


def test_similar_vs_dissimilar_needs_a_repeat():
    with pytest.raises(ValueError, match="tokens: expected a repeated token"):
        similar_vs_dissimilar(torch.eye(3), torch.tensor([1, 2, 3]))


def test_seen_token_guess():
    inputs = torch.tensor([[3, 4, 3, 5]])
    targets = torch.tensor([[IGNORE, 3, 9, 4]])
    # t=1: seen {3, 4}, answer 3 -> 1/2; t=2: answer 9 never seen -> 0; t=3: {3, 4, 5} -> 1/3
    assert seen_token_guess(inputs, targets) == pytest.approx((1 / 2 + 0 + 1 / 3) / 3)
