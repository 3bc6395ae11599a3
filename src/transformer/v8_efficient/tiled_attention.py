"""Tiled attention, FlashAttention's algorithm in plain PyTorch: memory linear in T.

Explicit attention builds the (T, T) scores. Here the keys are read in blocks of
``block_size``, and an *online softmax* keeps, per query, the running maximum m, the
running sum l of exp(score - m) and the running weighted sum of values. When a new block
raises the maximum, the old sums are rescaled by exp(m_old - m_new), so after the last
block they equal the full softmax's. The largest tensor alive is one block of scores,
(B, H, T, block_size).

The backward pass does not keep those blocks either: it recomputes each block's
probabilities from q, k and the saved log-sum-exp per query (``torch.autograd.Function``).

Masks follow SDPA: ``attend_mask`` is bool, True = attend, broadcast to (B, H, T_q, T_k);
``causal`` lets query i see keys j <= i (SDPA's ``is_causal``). A query that may attend to
no key gets a zero output and zero gradients (SDPA gives NaN there).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from transformer._checks import (
    check_floating,
    check_positive_int,
    check_rank,
    check_same_dtype,
    shape_str,
)


def block_scores(
    q: Tensor, k: Tensor, start: int, rows: int, scale: float, causal: bool, mask: Tensor | None
) -> Tensor:
    """The scores of queries ``rows``.. against keys ``start``..start+block, -inf where
    blocked. q (B, H, R, D) already sliced to those queries, k (B, H, S, D) the block."""
    scores = (q @ k.transpose(-2, -1)) * scale  # (B, H, R, S)
    if causal:
        query = torch.arange(rows, rows + q.shape[-2], device=q.device)  # (R,)
        key = torch.arange(start, start + k.shape[-2], device=q.device)  # (S,)
        scores = scores.masked_fill(key > query[:, None], float("-inf"))  # (B, H, R, S)
    if mask is not None:
        blocked = ~mask[..., rows:, start : start + k.shape[-2]]  # (B, H, R, S), a view
        scores = scores.masked_fill(blocked, float("-inf"))
    return scores


def query_start(causal: bool, start: int) -> int:
    """The first query a key block can matter to: causal queries before it see none of it."""
    return start if causal else 0


def tiled_forward(
    q: Tensor, k: Tensor, v: Tensor, causal: bool, mask: Tensor | None, block: int, scale: float
) -> tuple[Tensor, Tensor]:
    """(output (B, H, T_q, D_v), log-sum-exp (B, H, T_q), -inf for queries with no key)."""
    shape = q.shape[:-1]  # (B, H, T_q)
    running_max = q.new_full(shape, float("-inf"))  # (B, H, T_q) m
    running_sum = q.new_zeros(shape)  # (B, H, T_q) l
    weighted = q.new_zeros((*shape, v.shape[-1]))  # (B, H, T_q, D_v)
    for start in range(0, k.shape[-2], block):
        rows = query_start(causal, start)
        if rows >= q.shape[-2]:
            break
        k_block, v_block = k[..., start : start + block, :], v[..., start : start + block, :]
        scores = block_scores(q[..., rows:, :], k_block, start, rows, scale, causal, mask)
        old_max = running_max[..., rows:]  # (B, H, R)
        new_max = torch.maximum(old_max, scores.amax(dim=-1))  # (B, H, R)
        safe_max = torch.where(new_max.isinf(), 0.0, new_max)  # (B, H, R): no key yet -> 0
        probs = torch.exp(scores - safe_max.unsqueeze(-1))  # (B, H, R, S), 0 where blocked
        rescale = torch.exp(old_max - safe_max)  # (B, H, R): exp(m_old - m_new), 0 at first
        running_sum[..., rows:] = rescale * running_sum[..., rows:] + probs.sum(dim=-1)
        weighted[..., rows:, :] = rescale.unsqueeze(-1) * weighted[..., rows:, :] + probs @ v_block
        running_max[..., rows:] = new_max
    empty = running_sum == 0  # (B, H, T_q) queries that may attend to no key
    output = weighted / torch.where(empty, 1.0, running_sum).unsqueeze(-1)  # (B, H, T_q, D_v)
    log_sum_exp = torch.where(empty, float("-inf"), running_max + running_sum.log())  # (B, H, T_q)
    return output, log_sum_exp


def tiled_backward(
    grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, log_sum_exp: Tensor,
    causal: bool, mask: Tensor | None, block: int, scale: float,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Gradients of q, k and v, recomputing each block's probabilities from log_sum_exp."""
    grad_q, grad_k, grad_v = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    safe_lse = torch.where(log_sum_exp.isinf(), math.inf, log_sum_exp)  # no key -> probs 0
    row_dot = (grad_out * out).sum(dim=-1)  # (B, H, T_q): sum_j P_ij dP_ij
    for start in range(0, k.shape[-2], block):
        rows = query_start(causal, start)
        if rows >= q.shape[-2]:
            break
        keys = slice(start, start + block)
        k_block, v_block = k[..., keys, :], v[..., keys, :]
        q_rows, grad_rows = q[..., rows:, :], grad_out[..., rows:, :]  # (B, H, R, D)
        scores = block_scores(q_rows, k_block, start, rows, scale, causal, mask)
        probs = torch.exp(scores - safe_lse[..., rows:].unsqueeze(-1))  # (B, H, R, S)
        grad_v[..., keys, :] = probs.transpose(-2, -1) @ grad_rows  # (B, H, S, D_v)
        grad_probs = grad_rows @ v_block.transpose(-2, -1)  # (B, H, R, S)
        grad_scores = probs * (grad_probs - row_dot[..., rows:].unsqueeze(-1))  # (B, H, R, S)
        grad_q[..., rows:, :] += (grad_scores @ k_block) * scale  # (B, H, R, D)
        grad_k[..., keys, :] = (grad_scores.transpose(-2, -1) @ q_rows) * scale  # (B, H, S, D)
    return grad_q, grad_k, grad_v


class TiledAttention(torch.autograd.Function):
    """softmax(q kᵀ · scale + mask) v in key blocks; the backward pass recomputes them."""

    @staticmethod
    def forward(ctx, q, k, v, causal, mask, block, scale):  # noqa: D102
        out, log_sum_exp = tiled_forward(q, k, v, causal, mask, block, scale)
        ctx.save_for_backward(q, k, v, out, log_sum_exp)
        ctx.mask, ctx.causal, ctx.block, ctx.scale = mask, causal, block, scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # noqa: D102
        q, k, v, out, log_sum_exp = ctx.saved_tensors
        grads = tiled_backward(
            grad_out, q, k, v, out, log_sum_exp, ctx.causal, ctx.mask, ctx.block, ctx.scale
        )
        return (*grads, None, None, None, None)


def check_inputs(q: Tensor, k: Tensor, v: Tensor, attend_mask: Tensor | None) -> None:
    for name, x in (("query", q), ("key", k), ("value", v)):
        check_rank(name, x, (4,), "(batch, heads, seq, head_dim)")
        check_floating(name, x)
        check_same_dtype(name, x, q.dtype, "query's dtype")
    if k.shape[:-1] != v.shape[:-1] or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            "query, key, value: expected (B, H, T_q, D), (B, H, T_k, D) and (B, H, T_k, D_v), "
            f"got {shape_str(q.shape)}, {shape_str(k.shape)} and {shape_str(v.shape)}"
        )
    if attend_mask is None:
        return
    if attend_mask.dtype != torch.bool:
        raise TypeError(
            f"attend_mask: expected a bool tensor (True = attend), got {attend_mask.dtype}"
        )
    wanted = (*q.shape[:2], q.shape[-2], k.shape[-2])
    try:
        torch.broadcast_shapes(attend_mask.shape, wanted)
    except RuntimeError:
        raise ValueError(
            f"attend_mask: expected a shape that broadcasts to (B, H, T_q, T_k) = "
            f"{shape_str(wanted)}, got {shape_str(attend_mask.shape)}"
        ) from None


def tiled_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attend_mask: Tensor | None = None,
    *,
    causal: bool = False,
    block_size: int = 128,
    scale: float | None = None,
) -> Tensor:
    """softmax(q kᵀ / √d + mask) v with memory linear in T: q (B, H, T_q, D), k (B, H, T_k, D),
    v (B, H, T_k, D_v) -> (B, H, T_q, D_v). Equal to SDPA's output and gradients wherever
    a query may attend to at least one key; see the module docstring for the masks."""
    check_inputs(query, key, value, attend_mask)
    block = check_positive_int("block_size", block_size)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    mask = None
    if attend_mask is not None:  # a broadcast view: a (B, 1, 1, T_k) mask stays that size
        batch, heads, queries = query.shape[:3]
        mask = attend_mask.to(query.device).expand(batch, heads, queries, key.shape[-2])
    return TiledAttention.apply(query, key, value, causal, mask, block, scale)
