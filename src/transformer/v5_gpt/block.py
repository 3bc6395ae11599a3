"""GPT-2's block: v4's pre-norm ``TransformerBlock`` with GPT-2's activation and dropouts.

Three differences from v4, each small:

* GELU with the tanh approximation, GPT-2's activation (``"gelu_new"`` in Hugging Face);
* GPT-2's dropouts: ``attn_pdrop`` on the attention weights and ``resid_pdrop`` on each
  sublayer's output, but none between the two MLP linears (PyTorch's layer has one there);
* ``forward(x)`` is always causal and takes the fused path,
  ``F.scaled_dot_product_attention(..., is_causal=True)``: no mask is built and no weights are
  kept, which is what makes training fast. The inherited ``forward_with_attention`` (the
  explicit softmax, with the weights) gives the same numbers.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from transformer.v1_basic_attention import merge_heads, split_heads
from transformer.v4_block import TransformerBlock
from transformer.v5_gpt.config import GPTConfig


def gelu_tanh(x: Tensor) -> Tensor:
    """GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."""
    return F.gelu(x, approximate="tanh")


class GPTBlock(TransformerBlock):
    """x (batch, seq_len, n_embd) -> same shape: x + attn(ln_1(x)), then + mlp(ln_2(x)).

    Parameter names are v4's (``self_attn``, ``linear1``, ``linear2``, ``norm1``, ``norm2``);
    ``transformer.v5_gpt.hf`` maps them onto GPT-2's (``attn.c_attn``, ``mlp.c_fc``, ...).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(
            config.n_embd,
            config.n_head,
            dim_feedforward=config.inner_dim,
            dropout=config.resid_pdrop,
            activation=gelu_tanh,
            layer_norm_eps=config.layer_norm_epsilon,
            batch_first=True,
            norm_first=True,
        )
        self.self_attn.dropout = config.attn_pdrop  # NEW: the attention weights' own rate
        self.dropout = nn.Identity()  # NEW: GPT-2 has no dropout inside the MLP

    def causal_self_attention(self, x: Tensor) -> Tensor:
        """The fused path: x (B, T, E) -> attention output (B, T, E); query t sees keys <= t."""
        attn = self.self_attn
        qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)  # (B, T, 3E)
        q, k, v = (split_heads(t, attn.num_heads) for t in qkv.split(attn.embed_dim, dim=-1))
        dropout_p = attn.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout_p, is_causal=True
        )  # (B, H, T, D)
        return attn.out_proj(merge_heads(out))  # (B, T, E)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, E) -> (B, T, E), causal, unchecked (``GPT.forward`` checks its input)."""
        x = x + self.dropout1(self.causal_self_attention(self.norm1(x)))  # (B, T, E)
        return x + self.feed_forward(self.norm2(x))  # (B, T, E)
