"""The task generators produce what their documentation says."""

import pytest
import torch

from transformer.experiments.tasks import (
    FIBONACCI_MODULUS,
    IGNORE,
    SEQUENTIAL_OFFSET,
    TASKS,
    fibonacci_orbits,
    fibonacci_split_pairs,
    get_task,
)


def sample(name, n=256, seed=0, split="train"):
    return TASKS[name].sample(n, torch.Generator().manual_seed(seed), split=split)


@pytest.mark.parametrize("split", ["train", "heldout", "unseen_pairs"])
def test_every_fibonacci_target_is_the_sum_of_the_two_previous_mod_m(split):
    batch = sample("fibonacci", split=split)
    x, y = batch.inputs, batch.targets
    for t in range(1, x.shape[1] - 1):
        assert torch.equal(y[:, t], (x[:, t - 1] + x[:, t]) % FIBONACCI_MODULUS)
    assert (y[:, 0] == IGNORE).all() and (y[:, -1] == IGNORE).all()
    assert (batch.needed.sum(-1)[:, 1:-1] == 2).all()
    t = torch.arange(1, x.shape[1] - 1)
    assert batch.needed[:, t, t].all() and batch.needed[:, t, t - 1].all()


def pairs_in(inputs):
    """Every (x[t-1], x[t]) pair of every sequence in ``inputs`` (N, T)."""
    return {
        tuple(p) for p in torch.stack([inputs[:, :-1], inputs[:, 1:]], -1).flatten(0, 1).tolist()
    }


def test_the_fibonacci_orbits_split_the_pairs_and_are_closed_under_the_step():
    m = FIBONACCI_MODULUS
    orbits = fibonacci_orbits(m)
    every = [pair for orbit in orbits for pair in orbit]
    assert len(every) == len(set(every)) == m * m
    assert sorted(len(o) for o in orbits) == [1] + [36] * 8  # the Pisano period of 17 is 36
    for orbit in orbits:
        a, b = orbit[-1]
        assert (b, (a + b) % m) == orbit[0]  # the step closes the orbit


def test_no_pair_of_an_unseen_pairs_sequence_ever_occurs_in_training():
    train = sample("fibonacci", n=4000, split="train").inputs  # (N, T)
    unseen = sample("fibonacci", n=4000, seed=1, split="unseen_pairs").inputs
    assert len(pairs_in(unseen)) == 72, "two whole orbits of 36 pairs"
    assert not pairs_in(train) & pairs_in(unseen)
    assert len(pairs_in(train)) == 289 - 72, "training sees every other pair"


def test_fibonacci_heldout_sequences_are_new_though_their_pairs_are_not():
    splits = {k: {tuple(p) for p in v.tolist()} for k, v in fibonacci_split_pairs(17).items()}
    assert not splits["train"] & splits["heldout"]
    assert not (splits["train"] | splits["heldout"]) & splits["unseen_pairs"]
    assert sum(map(len, splits.values())) == FIBONACCI_MODULUS**2
    assert len(splits["heldout"]) == round(0.2 * (289 - 72))
    train = sample("fibonacci", n=4000, split="train").inputs
    heldout = sample("fibonacci", split="heldout").inputs
    assert {tuple(p) for p in heldout[:, :2].tolist()} <= splits["heldout"]
    assert not {tuple(r) for r in heldout.tolist()} & {tuple(r) for r in train.tolist()}
    assert pairs_in(heldout) <= pairs_in(train)


def test_pattern_targets_continue_a_pattern_already_seen():
    batch = sample("pattern")
    x, y = batch.inputs, batch.targets
    for i in range(x.shape[0]):
        scored = (y[i] != IGNORE).nonzero().flatten().tolist()
        period = scored[0]  # the first scored position is the pattern length k
        assert period in (3, 4, 5)
        assert len(set(x[i, :period].tolist())) == period, "pattern tokens are distinct"
        assert torch.equal(x[i], x[i, :period].repeat(6)[: x.shape[1]])
        for t in scored:
            assert y[i, t] == x[i, t + 1]
            assert x[i, t] in x[i, :t].tolist(), "the query token was seen before"
            needed = batch.needed[i, t].nonzero().flatten()
            assert len(needed) >= 1 and (x[i, needed] == y[i, t]).all() and (needed <= t).all()


def test_sequential_target_is_the_token_k_places_back():
    batch = sample("sequential")
    x, y = batch.inputs, batch.targets
    k = SEQUENTIAL_OFFSET
    assert torch.equal(y[:, k:], x[:, :-k])
    assert (y[:, :k] == IGNORE).all()
    t = torch.arange(k, x.shape[1])
    assert batch.needed[:, t, t - k].all() and (batch.needed.sum(-1)[:, k:] == 1).all()


@pytest.mark.parametrize("name", sorted(TASKS))
def test_sampling_is_seeded_and_in_vocabulary(name):
    a, b, c = sample(name, seed=1), sample(name, seed=1), sample(name, seed=2)
    assert torch.equal(a.inputs, b.inputs) and not torch.equal(a.inputs, c.inputs)
    task = TASKS[name]
    assert a.inputs.shape == (256, task.seq_len) and a.needed.shape == (
        256,
        task.seq_len,
        task.seq_len,
    )
    assert a.inputs.min() >= 0 and a.inputs.max() < task.vocab_size
    assert task.probe_input().shape == (1, task.seq_len)
    assert task.probe_input().max() < task.vocab_size


def test_bad_task_and_split_names_are_refused():
    with pytest.raises(
        ValueError, match="task: expected one of pattern, fibonacci, sequential, got 'x'"
    ):
        get_task("x")
    with pytest.raises(
        ValueError, match="split: expected one of train, heldout for sequential, got 'test'"
    ):
        sample("sequential", split="test")
    with pytest.raises(ValueError, match="train, heldout for pattern, got 'unseen_pairs'"):
        sample("pattern", split="unseen_pairs")
