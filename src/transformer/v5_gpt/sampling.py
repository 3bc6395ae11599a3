"""Choosing the next token from the last position's logits: greedy, temperature, top-k."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

GREEDY_BELOW = 1e-4


def check_sampling(max_new_tokens: object, temperature: object, top_k: object) -> None:
    """Raise unless the arguments of ``GPT.generate`` make sense."""
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 0
    ):
        raise ValueError(f"max_new_tokens: expected a non-negative integer, got {max_new_tokens!r}")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature < math.inf
    ):
        raise ValueError(
            f"temperature: expected a finite float >= 0 (0 = greedy argmax), got {temperature!r}"
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k: expected None or a positive integer, got {top_k!r}")


def next_token(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """logits (B, vocab) -> one token id per row (B, 1).

    ``temperature=0`` takes the argmax, and so does a temperature below ``GREEDY_BELOW``
    (the limit of sampling as the temperature goes to 0; dividing by it would overflow).
    Otherwise the logits are divided by ``temperature`` (below 1 sharpens, above 1
    flattens), all but the ``top_k`` largest are dropped, and a token is drawn from the
    softmax with ``generator``.
    """
    check_sampling(0, temperature, top_k)
    if temperature < GREEDY_BELOW:
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    logits = logits / temperature  # (B, V)
    if top_k is not None and top_k < logits.shape[-1]:
        kth_largest = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))  # (B, V)
    probs = F.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


def generate_tokens(
    last_logits: Callable[[Tensor], Tensor],
    idx: Tensor,
    window: int,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    generator: torch.Generator | None,
) -> Tensor:
    """idx (B, T) -> (B, T + max_new_tokens), one token at a time.

    ``last_logits(context)`` maps the last ``window`` tokens (B, <= window) to the next
    token's logits (B, V). The arguments are checked by the caller (``check_sampling``).
    """
    for _ in range(max_new_tokens):
        logits = last_logits(idx[:, -window:])  # (B, V)
        token = next_token(logits, temperature, top_k, generator)  # (B, 1)
        idx = torch.cat([idx, token.to(idx.dtype)], dim=1)  # (B, T + 1)
    return idx
