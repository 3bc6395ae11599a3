"""Metrics on held-out data: accuracy at scored positions and attention mass where needed."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from transformer.experiments.tasks import IGNORE


def accuracy(logits: Tensor, targets: Tensor) -> float:
    """Fraction of scored positions whose argmax is the target. logits (N, T, V), targets (N, T)."""
    scored = targets != IGNORE  # (N, T)
    correct = (logits.argmax(dim=-1) == targets) & scored  # (N, T)
    return correct.sum().item() / scored.sum().item()


def seen_token_guess(inputs: Tensor, targets: Tensor) -> float:
    """Accuracy of guessing uniformly among the distinct tokens seen so far (x[0..t]).

    A baseline that needs no order at all: a model that only knows which tokens occurred
    scores about this much. inputs, targets (N, T).
    """
    vocab = int(max(inputs.max(), targets.max())) + 1
    seen = F.one_hot(inputs, vocab).cumsum(dim=1) > 0  # (N, T, V) token seen at or before t
    scored = targets != IGNORE  # (N, T)
    answer_seen = seen.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (N, T)
    guess = answer_seen / seen.sum(dim=-1)  # (N, T) chance of picking it among the seen
    return (guess * scored).sum().item() / scored.sum().item()


def attention_mass(weights: Tensor, needed: Tensor, targets: Tensor) -> list[float]:
    """Per head, the mean attention a scored query puts on the positions it needs.

    weights (N, H, T, T), needed (N, T, T) bool, targets (N, T). Returns H numbers in [0, 1]:
    1 means every scored query looked only at what it needs.
    """
    scored = targets != IGNORE  # (N, T)
    on_needed = (weights * needed.unsqueeze(1)).sum(dim=-1)  # (N, H, T)
    per_head = (on_needed * scored.unsqueeze(1)).sum(dim=(0, 2)) / scored.sum()  # (H,)
    return per_head.tolist()


def attention_by_offset(weights: Tensor, targets: Tensor) -> list[list[float]]:
    """Per head and offset k, the mean weight a scored query at t puts on the key at t - k.

    weights (N, H, T, T), targets (N, T). Returns H lists, one number per offset
    k = 0 .. (the last scored position): mass[h][k] = mean over scored queries t >= k of
    weights[n, h, t, t - k]. A head that always looks two places back has mass[h][2] = 1.
    """
    scored = targets != IGNORE  # (N, T)
    last = int(scored.any(dim=0).nonzero().max())  # the last position with a scored query
    per_offset = []
    for k in range(last + 1):
        on_key = weights.diagonal(offset=-k, dim1=-2, dim2=-1)  # (N, H, T-k): query t = k..T-1
        queries = scored[:, k:].unsqueeze(1)  # (N, 1, T-k)
        count = queries.sum()
        mass = (on_key * queries).sum(dim=(0, 2)) / count  # (H,)
        per_offset.append(mass if count else torch.zeros_like(mass))
    return torch.stack(per_offset, dim=-1).tolist()  # (H, K)


def uniform_attention_mass(needed: Tensor, targets: Tensor, causal: bool = True) -> float:
    """The mass on needed positions if every query spread its attention evenly (a baseline)."""
    seq_len = needed.shape[-1]
    visible = torch.ones(seq_len, seq_len, dtype=torch.bool)  # (T, T)
    if causal:
        visible = visible.tril()
    uniform = visible / visible.sum(dim=-1, keepdim=True)  # (T, T) rows sum to 1
    return attention_mass(uniform.expand(needed.shape[0], 1, -1, -1), needed, targets)[0]


def similar_vs_dissimilar(weights: Tensor, tokens: Tensor) -> tuple[float, float]:
    """The untrained probe: weight a query gives earlier keys with its own token vs other tokens.

    weights (T, T) for one sequence (already averaged over heads), tokens (T,). Compared
    within each query row, then averaged over the rows that have both kinds of earlier key:
    under a causal mask early rows have fewer keys and so larger weights, which would
    otherwise pass for a preference.
    """
    seq_len = tokens.shape[0]
    earlier = torch.ones(seq_len, seq_len, dtype=torch.bool).tril(-1)  # (T, T) keys j < i
    same_token = tokens.unsqueeze(1) == tokens.unsqueeze(0)  # (T, T)
    similar, dissimilar = same_token & earlier, ~same_token & earlier  # (T, T)
    rows = similar.any(dim=-1) & dissimilar.any(dim=-1)  # (T,) queries with both kinds
    if not rows.any():
        raise ValueError("tokens: expected a repeated token after a different one, got none")
    mean_similar = (weights * similar).sum(-1)[rows] / similar.sum(-1)[rows]  # (R,)
    mean_dissimilar = (weights * dissimilar).sum(-1)[rows] / dissimilar.sum(-1)[rows]  # (R,)
    return mean_similar.mean().item(), mean_dissimilar.mean().item()
