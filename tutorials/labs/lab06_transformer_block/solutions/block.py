"""Lab 06, solved: the transformer block, post-norm or pre-norm."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from transformer.v2_multihead import MultiHeadAttention


class TransformerBlock(nn.Module):
    """Self-attention and a feed-forward layer, each in a residual + LayerNorm."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: str = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout=dropout,
                                            batch_first=batch_first)  # fmt: skip
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = F.gelu if activation == "gelu" else F.relu
        self.norm_first = norm_first

    def feed_forward(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src: Tensor, src_mask: Tensor | None = None,
                src_key_padding_mask: Tensor | None = None) -> Tensor:  # fmt: skip
        def attend(x: Tensor) -> Tensor:
            padding = src_key_padding_mask
            out = self.self_attn(x, x, x, attn_mask=src_mask, key_padding_mask=padding)
            return self.dropout1(out[0])

        x = src
        if self.norm_first:
            x = x + attend(self.norm1(x))
            return x + self.feed_forward(self.norm2(x))
        x = self.norm1(x + attend(x))
        return self.norm2(x + self.feed_forward(x))
