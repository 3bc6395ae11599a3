"""Lab 08, solved: cross-attention and the decoder block."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from transformer.v2_multihead import MultiHeadAttention


def cross_attention(attn: MultiHeadAttention, x: Tensor, memory: Tensor,
                    memory_key_padding_mask: Tensor | None = None) -> Tensor:  # fmt: skip
    """Queries from the target x, keys and values from the source memory."""
    return attn(x, memory, memory, key_padding_mask=memory_key_padding_mask,
                need_weights=False)[0]  # fmt: skip


class DecoderBlock(nn.Module):
    """Masked self-attention, cross-attention, feed-forward; each in a residual + LayerNorm."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: str = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False) -> None:  # fmt: skip
        super().__init__()
        attention = {"dropout": dropout, "batch_first": batch_first}
        self.self_attn = MultiHeadAttention(d_model, nhead, **attention)
        self.multihead_attn = MultiHeadAttention(d_model, nhead, **attention)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.activation = F.gelu if activation == "gelu" else F.relu
        self.norm_first = norm_first

    def self_block(self, x: Tensor, tgt_mask: Tensor | None) -> Tensor:
        return self.dropout1(self.self_attn(x, x, x, attn_mask=tgt_mask, need_weights=False)[0])

    def cross_block(self, x: Tensor, memory: Tensor, padding: Tensor | None) -> Tensor:
        return self.dropout2(cross_attention(self.multihead_attn, x, memory, padding))

    def feed_forward(self, x: Tensor) -> Tensor:
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def sublayers(self, memory: Tensor, tgt_mask: Tensor | None, padding: Tensor | None):
        """The three sublayers in order, each with its LayerNorm."""
        return [
            (lambda x: self.self_block(x, tgt_mask), self.norm1),
            (lambda x: self.cross_block(x, memory, padding), self.norm2),
            (self.feed_forward, self.norm3),
        ]

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None,
                memory_key_padding_mask: Tensor | None = None) -> Tensor:  # fmt: skip
        x = tgt
        for sublayer, norm in self.sublayers(memory, tgt_mask, memory_key_padding_mask):
            x = x + sublayer(norm(x)) if self.norm_first else norm(x + sublayer(x))
        return x
