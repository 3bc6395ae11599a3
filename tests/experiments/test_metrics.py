"""Metrics on hand-made inputs whose answers are known."""

import pytest
import torch

from transformer.experiments.metrics import (
    accuracy,
    attention_by_offset,
    attention_mass,
    seen_token_guess,
    similar_vs_dissimilar,
    uniform_attention_mass,
)
from transformer.experiments.runner import offset_summary
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


def test_attention_by_offset_finds_a_head_that_looks_k_places_back():
    seq_len, k = 8, 2
    back = torch.zeros(seq_len, seq_len)
    for t in range(seq_len):
        back[t, max(t - k, 0)] = 1.0  # looks two back (the first queries: the first key)
    spread = torch.tril(torch.ones(seq_len, seq_len))
    spread = spread / spread.sum(-1, keepdim=True)  # (T, T) evenly over the keys so far
    weights = torch.stack([back, spread]).expand(3, 2, seq_len, seq_len)  # (N, H, T, T)
    targets = torch.full((3, seq_len), IGNORE)
    targets[:, 3:7] = 1  # scored queries t = 3..6
    mass = attention_by_offset(weights, targets)
    assert len(mass) == 2 and len(mass[0]) == 7  # offsets 0..6, up to the last scored query
    assert mass[0] == pytest.approx([0, 0, 1, 0, 0, 0, 0])
    # evenly spread: query t gives 1/(t+1) to each key; offset 4 exists for t = 4, 5, 6 only
    assert mass[1][4] == pytest.approx((1 / 5 + 1 / 6 + 1 / 7) / 3)
    assert mass[1][0] == pytest.approx((1 / 4 + 1 / 5 + 1 / 6 + 1 / 7) / 4)


def test_offset_summary_names_each_heads_peak_and_a_shared_one():
    summary = offset_summary([[0.1, 0.2, 0.7], [0.0, 0.1, 0.9]])
    assert summary["peak_offset"] == [2, 2] and summary["shared_peak_offset"] == 2
    assert summary["peak_mass_min"] == 0.7 and summary["peak_mass_max"] == 0.9
    assert offset_summary([[0.6, 0.4], [0.3, 0.7]])["shared_peak_offset"] is None
