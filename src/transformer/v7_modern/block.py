"""The modern decoder block: v5's pre-norm block with the norm, the MLP and the attention
chosen by the config.

    x = x + dropout(attention(norm1(x)))    attention: GQA, RoPE inside when switched on
    x = x + dropout(mlp(norm2(x)))          mlp: GELU or SwiGLU

With every switch at GPT-2's setting this computes exactly what ``v5_gpt.gpt_block`` does.
"""

from __future__ import annotations

from torch import Tensor, nn

from transformer.v7_modern.attention import GroupedQueryAttention
from transformer.v7_modern.config import ModernConfig
from transformer.v7_modern.feed_forward import make_feed_forward
from transformer.v7_modern.norm import make_norm


class ModernBlock(nn.Module):
    """One pre-norm causal block: x (B, T, n_embd) -> same shape.

    Parts: ``norm1``, ``self_attn`` (:class:`GroupedQueryAttention`), ``norm2``, ``mlp``
    (``linear1``/``linear2`` for GELU, ``gate_proj``/``up_proj``/``down_proj`` for SwiGLU).
    """

    def __init__(self, config: ModernConfig) -> None:
        super().__init__()
        dim, eps = config.n_embd, config.layer_norm_epsilon
        self.norm1 = make_norm(config.norm, dim, eps, config.bias)
        self.self_attn = GroupedQueryAttention(
            dim,
            config.n_head,
            config.kv_heads,
            dropout=config.attn_pdrop,
            bias=config.bias,
            rope_theta=config.rope_theta if config.positions == "rope" else None,
        )
        self.norm2 = make_norm(config.norm, dim, eps, config.bias)
        self.mlp = make_feed_forward(config.mlp, dim, config.inner_dim, config.bias)
        self.dropout = nn.Dropout(config.resid_pdrop)  # on each sublayer's output

    def self_attend(
        self, x: Tensor, *, causal: bool, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """x (B, T, E) -> (B, T, E) and the weights (B, H, T, T), or None on the fused path."""
        attended, weights = self.self_attn.self_attend(
            self.norm1(x), causal=causal, need_weights=need_weights
        )  # (B, T, E), (B, H, T, T) or None
        x = x + self.dropout(attended)  # (B, T, E)
        return x + self.feed_forward(x), weights  # (B, T, E)

    def feed_forward(self, x: Tensor) -> Tensor:
        """The MLP sublayer before its residual: dropout(mlp(norm2(x))), (B, T, E) -> same."""
        return self.dropout(self.mlp(self.norm2(x)))  # (B, T, E)

    def forward(self, x: Tensor, causal: bool = True) -> Tensor:
        return self.self_attend(x, causal=causal, need_weights=False)[0]
