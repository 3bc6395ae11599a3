"""Generating text with any causal stage through the contract: one token at a time."""

from __future__ import annotations

import torch
from torch import Tensor

from transformer._checks import check_token_ids
from transformer.contract import SequenceModel
from transformer.v5_gpt.sampling import check_sampling, generate_tokens


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

    def last_logits(context: Tensor) -> Tensor:  # (B, <= window) -> (B, V)
        return model(context)[:, -1]

    return generate_tokens(last_logits, idx, window, max_new_tokens, temperature, top_k, generator)
