"""What each head of a trained stage does: its scores, and what the task loses without it.

Every task run measures, on the held-out batch, with ``transformer.inspect``:

* four head scores per (layer, head) (their formulas are in ``transformer.inspect.scores``):
  ``previous_token`` (weight on t - 1), ``three_back`` (weight on t - 3, what sequential
  needs), ``duplicate_token`` (weight on earlier copies of the query's own token) and
  ``induction``, on ``INDUCTION_SEQUENCES`` sequences of seq_len // 2 distinct random tokens
  repeated twice, from their own seeded generator (the language model gets the same four);
* mean ablation of each head alone: the task's held-out accuracy without it. The head whose
  loss costs the most accuracy is ``most_needed``; the head with the task's own score
  (``TASK_SCORE``) highest is ``top_scoring``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from transformer.experiments.tasks import Batch, Task
from transformer.inspect import (
    ablate_heads,
    duplicate_token_score,
    induction_score,
    k_back_score,
    previous_token_score,
    repeated_random_tokens,
    run_with_cache,
)

SCORES = ("previous_token", "three_back", "duplicate_token", "induction")
TASK_SCORE = {"pattern": "induction", "sequential": "three_back", "fibonacci": "previous_token"}
INDUCTION_SEQUENCES = 200
INDUCTION_SEED_OFFSET = 20_000  # the repeated sequences' generator: not training's, not held-out's
ABLATION_MODE = "mean"


def rounded(table: Tensor) -> list[list[float]]:
    """An (L, H) tensor as nested lists of six-decimal floats."""
    return [[round(float(v), 6) for v in row] for row in table]


def head_scores(model: nn.Module, tokens: Tensor, vocab_size: int, seed: int) -> dict[str, Tensor]:
    """The four scores of every head, (L, H) each: three on ``tokens`` (B, T), induction on
    ``INDUCTION_SEQUENCES`` sequences of T // 2 random ids (distinct where the vocabulary
    allows) repeated twice."""
    patterns = run_with_cache(model, tokens).patterns  # L x (B, H, T, T)
    n = tokens.shape[1] // 2
    generator = torch.Generator().manual_seed(seed + INDUCTION_SEED_OFFSET)
    repeated = repeated_random_tokens(
        vocab_size, n, INDUCTION_SEQUENCES, generator, distinct=n <= vocab_size
    ).to(tokens.device)  # (S, 2n)
    return {
        "previous_token": previous_token_score(patterns),
        "three_back": k_back_score(patterns, 3),
        "duplicate_token": duplicate_token_score(patterns, tokens),
        "induction": induction_score(run_with_cache(model, repeated).patterns, n),
    }


def argmax_head(table: Tensor) -> list[int]:
    """[layer, head] of an (L, H) table's largest entry (the first one on a tie)."""
    index = int(table.flatten().argmax())
    return [index // table.shape[1], index % table.shape[1]]


def head_report(model: nn.Module, task: Task, batch: Batch, seed: int) -> dict:
    """Scores, single-head ablations and the two named heads, as results.json stores them."""
    scores = head_scores(model, batch.inputs, task.vocab_size, seed)
    layers, heads = scores["induction"].shape
    without = torch.empty(layers, heads)  # (L, H) accuracy with that one head ablated
    before = None
    for layer in range(layers):
        for head in range(heads):
            result = ablate_heads(
                model, batch.inputs, batch.targets, [(layer, head)], mode=ABLATION_MODE
            )
            before, without[layer, head] = result.accuracy_before, result.accuracy_after
    task_score = TASK_SCORE[task.name]
    most_needed = argmax_head(-without)
    top_scoring = argmax_head(scores[task_score])
    return {
        "scores": {name: rounded(scores[name]) for name in SCORES},
        "task_score": task_score,
        "ablation": {
            "mode": ABLATION_MODE,
            "accuracy": round(before, 6),
            "accuracy_without": rounded(without),
            "most_needed": {
                "head": most_needed,
                "accuracy_without": round(float(without[tuple(most_needed)]), 6),
                task_score: round(float(scores[task_score][tuple(most_needed)]), 6),
            },
            "top_scoring": {
                "head": top_scoring,
                task_score: round(float(scores[task_score][tuple(top_scoring)]), 6),
                "accuracy_without": round(float(without[tuple(top_scoring)]), 6),
            },
        },
    }
