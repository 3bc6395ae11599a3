"""Head scores: one number per (layer, head) that says what kind of head it is.

Each score reads attention patterns, a list of L tensors A_l (B, H, T, T) as
``run_with_cache(...).patterns`` or ``model(tokens, return_attention=True)`` give them
(A[b, h, t, s] is the weight query t puts on key s), and returns an (L, H) tensor. A score
of 1 means the head does exactly that, always; 0 means never.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from transformer._checks import check_positive_int, check_rank, check_shape, shape_str


def stacked(patterns: Sequence[Tensor]) -> Tensor:
    """L patterns (B, H, T, T) -> one tensor (L, B, H, T, T), after checking their shapes."""
    if isinstance(patterns, Tensor) or not isinstance(patterns, Sequence) or not patterns:
        got = (
            f"a tensor of shape {shape_str(patterns.shape)}"
            if isinstance(patterns, Tensor)
            else repr(patterns)
        )
        raise TypeError(
            f"patterns: expected a non-empty list of (batch, heads, seq, seq) tensors, got {got}"
        )
    first = patterns[0]
    for index, pattern in enumerate(patterns):
        check_rank(f"patterns[{index}]", pattern, (4,), "(batch, heads, seq, seq)")
        batch, heads, seq = first.shape[:3]
        check_shape(f"patterns[{index}]", pattern, batch=batch, heads=heads, seq=seq, keys=seq)
    return torch.stack(list(patterns))  # (L, B, H, T, T)


def k_back_score(patterns: Sequence[Tensor], k: int) -> Tensor:
    """score[l, h] = mean over b and t >= k of A_l[b, h, t, t - k]  -> (L, H).

    The weight each query puts on the key k places back; k = 0 is the weight on itself.
    """
    weights = stacked(patterns)  # (L, B, H, T, T)
    seq = weights.shape[-1]
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < seq:
        raise ValueError(f"k: expected an int with 0 <= k < seq_len={seq}, got {k!r}")
    on_key = weights.diagonal(offset=-k, dim1=-2, dim2=-1)  # (L, B, H, T-k): queries t = k..T-1
    return on_key.mean(dim=(1, 3))  # (L, H)


def previous_token_score(patterns: Sequence[Tensor]) -> Tensor:
    """score[l, h] = mean over b and t >= 1 of A_l[b, h, t, t - 1]  -> (L, H).

    A previous-token head scores 1; a causal head attending uniformly over T positions
    scores (1/2 + 1/3 + ... + 1/T) / (T - 1).
    """
    return k_back_score(patterns, 1)


def duplicate_token_score(patterns: Sequence[Tensor], tokens: Tensor) -> Tensor:
    """score[l, h] = mean over the queries (b, t) that have an earlier copy of their token of
    sum over s < t with tokens[b, s] == tokens[b, t] of A_l[b, h, t, s]  -> (L, H).

    The weight a query puts on the earlier positions holding its own token, summed over
    those positions, averaged over the queries that have one. tokens (B, T).
    """
    weights = stacked(patterns)  # (L, B, H, T, T)
    batch, seq = weights.shape[1], weights.shape[-1]
    check_rank("tokens", tokens, (2,), "(batch, seq)")
    check_shape("tokens", tokens, batch=batch, seq=seq)
    earlier = torch.ones(seq, seq, dtype=torch.bool, device=tokens.device).tril(-1)  # (T, T)
    same = (tokens.unsqueeze(2) == tokens.unsqueeze(1)) & earlier  # (B, T, T) s < t, same token
    has_copy = same.any(dim=-1)  # (B, T)
    if not has_copy.any():
        raise ValueError(
            "tokens: expected at least one query whose token appears earlier in its row, "
            "got none (every token is new where it stands)"
        )
    on_copies = (weights * same[None, :, None]).sum(dim=-1)  # (L, B, H, T)
    chosen = has_copy[None, :, None]  # (1, B, 1, T)
    return (on_copies * chosen).sum(dim=(1, 3)) / has_copy.sum()  # (L, H)


def induction_score(patterns: Sequence[Tensor], n: int) -> Tensor:
    """score[l, h] = mean over b and n <= t < 2n of A_l[b, h, t, t - n + 1]  -> (L, H),
    on patterns of a sequence of n tokens repeated twice (:func:`repeated_random_tokens`).

    Query t in the second half holds the token first seen at t - n; an induction head looks
    at the token that came after it, t - n + 1, the one to predict next.
    """
    weights = stacked(patterns)  # (L, B, H, T, T)
    check_positive_int("n", n)
    seq = weights.shape[-1]
    if seq != 2 * n:
        raise ValueError(
            f"patterns: expected seq = 2 * n = {2 * n} (n tokens, then the same n again), "
            f"got seq = {seq}"
        )
    on_key = weights.diagonal(offset=-(n - 1), dim1=-2, dim2=-1)  # (L, B, H, n+1): t = n-1..
    return on_key[..., 1:].mean(dim=(1, 3))  # (L, H), queries t = n .. 2n-1


def repeated_random_tokens(
    vocab: int,
    n: int,
    batch: int,
    generator: torch.Generator | None = None,
    *,
    distinct: bool = False,
) -> Tensor:
    """(batch, 2n) token ids: a uniformly random row of n ids below ``vocab``, then the same
    row again. With ``distinct`` each half holds n different ids (vocab >= n), so every
    token in the second half has exactly one earlier copy."""
    check_positive_int("vocab", vocab)
    check_positive_int("n", n)
    check_positive_int("batch", batch)
    if distinct and n > vocab:
        raise ValueError(f"n: expected at most vocab={vocab} with distinct=True, got {n}")
    if distinct:
        noise = torch.rand(batch, vocab, generator=generator)  # (batch, vocab)
        half = noise.argsort(dim=-1)[:, :n]  # (batch, n) a random permutation's start
    else:
        half = torch.randint(vocab, (batch, n), generator=generator)  # (batch, n)
    return torch.cat([half, half], dim=1)  # (batch, 2n)
