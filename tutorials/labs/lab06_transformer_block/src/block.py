"""Lab 06: the transformer block, a drop-in for torch.nn.TransformerEncoderLayer.

Fill in TransformerBlock: __init__, feed_forward and forward.
Check your work with: poetry run pytest tests/ (in tutorials/labs/lab06_transformer_block)
"""

from __future__ import annotations

import torch  # noqa: F401
import torch.nn.functional as F  # noqa: F401  (F.relu, F.gelu)
from torch import Tensor, nn

from transformer.v2_multihead import MultiHeadAttention  # noqa: F401  (the attention sublayer)


class TransformerBlock(nn.Module):
    """Self-attention, then a position-wise feed-forward layer, each in a residual + LayerNorm.

    The arguments and parameter names are nn.TransformerEncoderLayer's, so that its state
    dict loads into this block:
      self_attn: MultiHeadAttention(d_model, nhead, dropout=dropout, batch_first=batch_first)
      linear1: nn.Linear(d_model, dim_feedforward); linear2: nn.Linear(dim_feedforward, d_model)
      norm1, norm2: nn.LayerNorm(d_model, eps=layer_norm_eps)
      dropout (inside the feed-forward layer), dropout1, dropout2: nn.Dropout(dropout)
    activation is "relu" (F.relu) or "gelu" (F.gelu).
    src is (batch, seq, d_model) with batch_first=True, else (seq, batch, d_model).
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        raise NotImplementedError(
            "lab06: implement __init__(): self_attn, linear1, dropout, linear2, norm1, norm2, "
            "dropout1, dropout2 and the activation"
        )

    def feed_forward(self, x: Tensor) -> Tensor:
        """The feed-forward sublayer before its residual, applied to every position on its own:
        dropout2(linear2(dropout(activation(linear1(x))))); x (..., d_model) -> the same shape."""
        raise NotImplementedError("lab06: implement feed_forward()")

    def forward(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """src -> the same shape. Masks use PyTorch's convention (True = blocked); pass them to
        self_attn as attn_mask and key_padding_mask.

        attention sublayer: dropout1(self_attn(x, x, x, ...)[0])
        post-norm (norm_first=False): x = norm1(x + attention(x)); x = norm2(x + feed_forward(x))
        pre-norm (norm_first=True):   x = x + attention(norm1(x)); x = x + feed_forward(norm2(x))
        """
        raise NotImplementedError("lab06: implement TransformerBlock.forward()")
