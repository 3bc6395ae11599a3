"""GPT-2's block: v4's ``TransformerBlock``, configured. No subclass, no override.

GPT-2's choices, each an argument of the block:

* pre-norm (``norm_first=True``): ``x + attn(ln_1(x))``, then ``+ mlp(ln_2(x))``;
* GELU with the tanh approximation (``"gelu_new"`` in Hugging Face);
* GPT-2's dropouts: ``attn_pdrop`` on the attention weights, ``resid_pdrop`` on each
  sublayer's output, and none between the two MLP linears (PyTorch's layer has one there).

Causality is not built in: ``GPT`` calls ``block(x, is_causal=True)``, which takes the fused
``F.scaled_dot_product_attention(..., is_causal=True)`` path without building a mask.
Because it is the v4 block, ``TransformerEncoder(gpt_block(config), 2)`` stacks it.
"""

from __future__ import annotations

from functools import partial

from torch.nn import functional as F

from transformer.v4_block import TransformerBlock
from transformer.v5_gpt.config import GPTConfig

# GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), PyTorch's own kernel
gelu_tanh = partial(F.gelu, approximate="tanh")


def gpt_block(config: GPTConfig) -> TransformerBlock:
    """One GPT-2 block: x (batch, seq_len, n_embd) -> same shape.

    Parameter names are v4's (``self_attn``, ``linear1``, ``linear2``, ``norm1``, ``norm2``);
    ``transformer.v5_gpt.hf`` maps them onto GPT-2's (``attn.c_attn``, ``mlp.c_fc``, ...).
    """
    return TransformerBlock(
        config.n_embd,
        config.n_head,
        dim_feedforward=config.inner_dim,
        dropout=config.resid_pdrop,
        activation=gelu_tanh,
        layer_norm_eps=config.layer_norm_epsilon,
        batch_first=True,
        norm_first=True,
        attention_dropout=config.attn_pdrop,  # NEW: the attention weights' own rate
        feed_forward_dropout=0.0,  # NEW: GPT-2 has no dropout inside the MLP
    )
