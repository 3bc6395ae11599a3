"""Metrics on held-out data: accuracy at scored positions and attention mass where needed."""

from __future__ import annotations

import torch
from torch import Tensor

from transformer.experiments.tasks import IGNORE


def accuracy(logits: Tensor, targets: Tensor) -> float:
    """Fraction of scored positions whose argmax is the target. logits (N, T, V), targets (N, T)."""
    scored = targets != IGNORE  # (N, T)
    correct = (logits.argmax(dim=-1) == targets) & scored  # (N, T)
    return correct.sum().item() / scored.sum().item()


def attention_mass(weights: Tensor, needed: Tensor, targets: Tensor) -> list[float]:
    """Per head, the mean attention a scored query puts on the positions it needs.

    weights (N, H, T, T), needed (N, T, T) bool, targets (N, T). Returns H numbers in [0, 1]:
    1 means every scored query looked only at what it needs.
    """
    scored = targets != IGNORE  # (N, T)
    on_needed = (weights * needed.unsqueeze(1)).sum(dim=-1)  # (N, H, T)
    per_head = (on_needed * scored.unsqueeze(1)).sum(dim=(0, 2)) / scored.sum()  # (H,)
    return per_head.tolist()


def uniform_attention_mass(needed: Tensor, targets: Tensor, causal: bool = True) -> float:
    """The mass on needed positions if every query spread its attention evenly (a baseline)."""
    seq_len = needed.shape[-1]
    visible = torch.ones(seq_len, seq_len, dtype=torch.bool)  # (T, T)
    if causal:
        visible = visible.tril()
    uniform = visible / visible.sum(dim=-1, keepdim=True)  # (T, T) rows sum to 1
    return attention_mass(uniform.expand(needed.shape[0], 1, -1, -1), needed, targets)[0]


def similar_vs_dissimilar(weights: Tensor, tokens: Tensor) -> tuple[float, float]:
    """The seed's probe: mean weight a query gives keys with its own token vs other tokens.

    weights (T, T) for one sequence (already averaged over heads), tokens (T,). Only keys a
    query can see (weight > 0 or on/below the diagonal) count; the query itself is excluded.
    """
    seq_len = tokens.shape[0]
    visible = torch.ones(seq_len, seq_len, dtype=torch.bool).tril(-1)  # (T, T) earlier keys
    same = (tokens.unsqueeze(1) == tokens.unsqueeze(0)) & visible  # (T, T)
    different = (tokens.unsqueeze(1) != tokens.unsqueeze(0)) & visible  # (T, T)
    return weights[same].mean().item(), weights[different].mean().item()
