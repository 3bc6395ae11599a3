"""Generating text with any causal stage through the contract: one token at a time."""

from __future__ import annotations

import torch
from torch import Tensor

from transformer._checks import check_token_ids
from transformer.contract import SequenceModel
from transformer.v5_gpt.sampling import check_sampling, next_token


@torch.no_grad()
def generate(
    model: SequenceModel,
    idx: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """idx (B, T) -> (B, T + max_new_tokens), each step reading at most ``max_len`` tokens.

    ``temperature=0`` is greedy; otherwise tokens are sampled (``v5_gpt.next_token``). The
    model must be causal: each position's logits may depend only on earlier tokens.
    """
    if not model.config.causal:
        raise ValueError("model: expected a causal model to generate from, got causal=False")
    check_token_ids("idx", idx, model.config.vocab_size)
    check_sampling(max_new_tokens, temperature, top_k)
    window = model.config.max_len or idx.shape[1] + max_new_tokens
    for _ in range(max_new_tokens):
        logits = model(idx[:, -window:])[:, -1]  # (B, V) the last position's
        token = next_token(logits, temperature, top_k, generator)  # (B, 1)
        idx = torch.cat([idx, token.to(idx.dtype)], dim=1)  # (B, T + 1)
    return idx
