"""Lab 08: cross-attention and the decoder block, a drop-in for torch.nn.TransformerDecoderLayer.

Fill in cross_attention, then DecoderBlock: __init__, feed_forward and forward.
Check your work with: poetry run pytest tests/ (in tutorials/labs/lab08_cross_attention)
"""

from __future__ import annotations

import torch  # noqa: F401
import torch.nn.functional as F  # noqa: F401  (F.relu, F.gelu)
from torch import Tensor, nn

from transformer.v2_multihead import MultiHeadAttention  # noqa: F401  (the attention sublayers)


def cross_attention(
    attn: MultiHeadAttention,
    x: Tensor,
    memory: Tensor,
    memory_key_padding_mask: Tensor | None = None,
) -> Tensor:
    """The decoder reads the source: queries from the target x, keys and values from the
    encoder's output memory. x (batch, tgt_len, d_model), memory (batch, src_len, d_model),
    attn built with batch_first=True; memory_key_padding_mask (batch, src_len), True = padded.
    Returns attn's output (batch, tgt_len, d_model), without the weights (need_weights=False).
    """
    raise NotImplementedError("lab08: implement cross_attention()")


class DecoderBlock(nn.Module):
    """Masked self-attention, cross-attention, feed-forward; each sublayer in a residual +
    LayerNorm. The arguments and parameter names are nn.TransformerDecoderLayer's:
      self_attn, multihead_attn: MultiHeadAttention(d_model, nhead, dropout=dropout,
          batch_first=batch_first)
      linear1: nn.Linear(d_model, dim_feedforward); linear2: nn.Linear(dim_feedforward, d_model)
      norm1, norm2, norm3: nn.LayerNorm(d_model, eps=layer_norm_eps)
      dropout (inside the feed-forward layer), dropout1, dropout2, dropout3: nn.Dropout(dropout)
    tgt is (batch, tgt_len, d_model) with batch_first=True, else (tgt_len, batch, d_model);
    memory likewise with src_len.
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
            "lab08: implement __init__(): self_attn, multihead_attn, linear1, dropout, linear2, "
            "norm1, norm2, norm3, dropout1, dropout2, dropout3 and the activation"
        )

    def feed_forward(self, x: Tensor) -> Tensor:
        """dropout3(linear2(dropout(activation(linear1(x))))); x (..., d_model) -> the same."""
        raise NotImplementedError("lab08: implement feed_forward()")

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """tgt, memory -> the shape of tgt. Masks use PyTorch's convention (True = blocked).

        self-attention:  dropout1(self_attn(x, x, x, attn_mask=tgt_mask)[0])  (causal)
        cross-attention: dropout2(multihead_attn(x, memory, memory,
                                  key_padding_mask=memory_key_padding_mask)[0])
        post-norm (norm_first=False): x = norm1(x + self(x)); x = norm2(x + cross(x));
                                      x = norm3(x + feed_forward(x))
        pre-norm (norm_first=True):   x = x + self(norm1(x)); x = x + cross(norm2(x));
                                      x = x + feed_forward(norm3(x))
        """
        raise NotImplementedError("lab08: implement DecoderBlock.forward()")
