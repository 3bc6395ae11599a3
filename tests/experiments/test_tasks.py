"""The task generators produce what their documentation says."""

import pytest
import torch

from transformer.experiments.tasks import (
    FIBONACCI_MODULUS,
    IGNORE,
    SEQUENTIAL_OFFSET,
    TASKS,
    fibonacci_start_pairs,
    get_task,
)


def sample(name, n=256, seed=0, split="train"):
    return TASKS[name].sample(n, torch.Generator().manual_seed(seed), split=split)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_every_fibonacci_target_is_the_sum_of_the_two_previous_mod_m(split):
    batch = sample("fibonacci", split=split)
    x, y = batch.inputs, batch.targets
    for t in range(1, x.shape[1] - 1):
        assert torch.equal(y[:, t], (x[:, t - 1] + x[:, t]) % FIBONACCI_MODULUS)
    assert (y[:, 0] == IGNORE).all() and (y[:, -1] == IGNORE).all()
    assert (batch.needed.sum(-1)[:, 1:-1] == 2).all()
    t = torch.arange(1, x.shape[1] - 1)
    assert batch.needed[:, t, t].all() and batch.needed[:, t, t - 1].all()


def test_fibonacci_heldout_start_pairs_are_never_trained_on():
    train = {tuple(p) for p in fibonacci_start_pairs(FIBONACCI_MODULUS, "train").tolist()}
    heldout = {tuple(p) for p in fibonacci_start_pairs(FIBONACCI_MODULUS, "heldout").tolist()}
    assert not train & heldout
    assert len(train) + len(heldout) == FIBONACCI_MODULUS**2
    assert len(heldout) == round(0.2 * FIBONACCI_MODULUS**2)
    starts = {tuple(p) for p in sample("fibonacci", split="heldout").inputs[:, :2].tolist()}
    assert starts <= heldout


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
    with pytest.raises(ValueError, match="split: expected one of train, heldout, got 'test'"):
        sample("sequential", split="test")
