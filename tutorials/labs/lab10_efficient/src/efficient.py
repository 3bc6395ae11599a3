"""Lab 10: attention that reads the keys in blocks, and one step of cached decoding.

Fill in online_softmax_attention and cached_decode_step.
Check your work with: poetry run pytest tests/ (in tutorials/labs/lab10_efficient)
"""

from __future__ import annotations

import math  # noqa: F401

import torch  # noqa: F401
from torch import Tensor

from transformer.v7_modern import RotaryEmbedding, apply_rope  # noqa: F401  (RoPE, as in lab07)


def online_softmax_attention(q: Tensor, k: Tensor, v: Tensor, block_size: int) -> Tensor:
    """softmax(q kᵀ / √D) v, non-causal and unmasked, reading block_size keys at a time.

    q (B, H, T_q, D), k (B, H, T_k, D), v (B, H, T_k, D_v) -> (B, H, T_q, D_v).
    Keep per query a running max m (B, H, T_q), a running sum l of exp(score - m) and a
    running weighted sum of values (B, H, T_q, D_v). For each block of keys: its scores
    (B, H, T_q, block_size), the new max m_new, the old l and weighted sum multiplied by
    exp(m_old - m_new), then the block's exp(scores - m_new) and their weighted values
    added. At the end divide by l. Never build all the scores (B, H, T_q, T_k) at once.
    """
    raise NotImplementedError("lab10: implement online_softmax_attention()")


def cached_decode_step(
    x_new: Tensor,
    cache_k: Tensor,
    cache_v: Tensor,
    w_q: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    position: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """One step of single-head causal self-attention with RoPE and a key/value cache.

    x_new (B, 1, E): the new token. cache_k, cache_v (B, T, D): the keys (already rotated)
    and the values of the T = position tokens before it, (B, 0, D) at the first step.
    w_q, w_k, w_v (D, E): like nn.Linear(E, D, bias=False).weight, so q = x_new @ w_q.T.
    Rotate q and k at position (v7's RotaryEmbedding(D) and apply_rope, theta 10000),
    append k and v to the cache, then attend: softmax(q new_cache_kᵀ / √D) new_cache_v.
    Returns (output (B, 1, D), new_cache_k (B, T + 1, D), new_cache_v (B, T + 1, D)).
    """
    raise NotImplementedError("lab10: implement cached_decode_step()")
