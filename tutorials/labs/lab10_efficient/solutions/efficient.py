"""Lab 10, solved: attention over key blocks with an online softmax, and one cached step."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from transformer.v7_modern import RotaryEmbedding, apply_rope


def online_softmax_attention(q: Tensor, k: Tensor, v: Tensor, block_size: int) -> Tensor:
    """softmax(q kᵀ / √D) v, reading block_size keys at a time."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    m = q.new_full(q.shape[:-1], float("-inf"))  # (B, H, T_q) running max
    l = q.new_zeros(q.shape[:-1])  # (B, H, T_q) running sum of exp(s - m)  # noqa: E741
    acc = q.new_zeros((*q.shape[:-1], v.shape[-1]))  # (B, H, T_q, D_v) weighted values
    for start in range(0, k.shape[-2], block_size):
        k_block = k[..., start : start + block_size, :]  # (B, H, S, D)
        v_block = v[..., start : start + block_size, :]  # (B, H, S, D_v)
        s = q @ k_block.transpose(-2, -1) * scale  # (B, H, T_q, S)
        m_new = torch.maximum(m, s.amax(dim=-1))  # (B, H, T_q)
        p = torch.exp(s - m_new.unsqueeze(-1))  # (B, H, T_q, S)
        rescale = torch.exp(m - m_new)  # (B, H, T_q): 0 at the first block
        l = rescale * l + p.sum(dim=-1)  # noqa: E741
        acc = rescale.unsqueeze(-1) * acc + p @ v_block  # (B, H, T_q, D_v)
        m = m_new
    return acc / l.unsqueeze(-1)  # (B, H, T_q, D_v)


def cached_decode_step(
    x_new: Tensor,
    cache_k: Tensor,
    cache_v: Tensor,
    w_q: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    position: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Project, rotate at position, append to the cache, attend over all of it."""
    q, k, v = x_new @ w_q.T, x_new @ w_k.T, x_new @ w_v.T  # (B, 1, D) each
    cos, sin = RotaryEmbedding(q.shape[-1])(torch.tensor([position]), q.dtype)  # (1, D) each
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)  # (B, 1, D) each
    cache_k = torch.cat([cache_k, k], dim=1)  # (B, T + 1, D)
    cache_v = torch.cat([cache_v, v], dim=1)  # (B, T + 1, D)
    scores = q @ cache_k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, 1, T + 1)
    return scores.softmax(dim=-1) @ cache_v, cache_k, cache_v  # (B, 1, D), caches
