"""Lab 04: make v1's multi-head attention match torch.nn.MultiheadAttention.

Fill in to_torch_mask and load_from_torch.
Check your work with: poetry run pytest tests/ (in tutorials/labs/lab04_pytorch_comparison)
"""

from __future__ import annotations

import torch  # noqa: F401
from torch import Tensor, nn


def to_torch_mask(attend_mask: Tensor) -> Tensor:
    """v1's mask (L, S) -> nn.MultiheadAttention's attn_mask (L, S).

    attend_mask: bool or 0/1 numbers, 0 / False = blocked (v1's convention, 1 = attend).
    Returns a bool tensor where True = blocked (PyTorch's convention).
    """
    raise NotImplementedError("lab04: implement to_torch_mask() in compare.py")


def load_from_torch(ours: nn.Module, theirs: nn.MultiheadAttention) -> None:
    """Copy ``theirs``' weights into ``ours`` in place.

    ours: a v1-style MultiHeadAttention(E, H) with nn.Linear layers w_q, w_k, w_v, w_o.
    theirs: nn.MultiheadAttention(E, H, batch_first=True) with
      in_proj_weight (3E, E): the q, k and v weights stacked along dim 0,
      in_proj_bias (3E,): the q, k and v biases, stacked the same way,
      out_proj: an nn.Linear(E, E).
    """
    raise NotImplementedError("lab04: implement load_from_torch() in compare.py")
