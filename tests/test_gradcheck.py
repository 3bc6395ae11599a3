"""Gradients checked numerically in float64 with torch.autograd.gradcheck."""

import pytest
import torch
from torch.autograd import gradcheck

from transformer.v1_basic_attention import attention
from transformer.v2_multihead import MultiHeadAttention
from transformer.v3_positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from transformer.v4_block import TransformerBlock
from transformer.v5_gpt import GPT, GPTConfig


def test_v1_attention_gradcheck_with_mask():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 4, 3, generator=gen, dtype=torch.float64) for _ in range(3))
    for t in (q, k, v):
        t.requires_grad_()
    mask = torch.tensor([[1, 0, 0, 1], [1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])  # row 2 blocked

    def fn(q, k, v):
        return attention(q, k, v, mask)

    assert gradcheck(fn, (q, k, v), eps=1e-6, atol=1e-8)


def test_v2_multihead_gradcheck_with_masks():
    torch.manual_seed(0)
    mha = MultiHeadAttention(6, 2, kdim=4, vdim=5, add_bias_kv=True, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    query = torch.randn(3, 2, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    key = torch.randn(4, 2, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    value = torch.randn(4, 2, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    attn_mask = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    attn_mask[0, 1] = float("-inf")
    key_padding_mask = torch.tensor([[False, False, True, False], [False, True, True, False]])
    params = tuple(mha.parameters())

    def fn(query, key, value, *weights):
        out, attn = mha(
            query,
            key,
            value,
            key_padding_mask=key_padding_mask,
            attn_mask=attn_mask,
            average_attn_weights=False,
        )
        return out, attn

    assert gradcheck(fn, (query, key, value, *params), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("module_cls", [SinusoidalPositionalEncoding, LearnedPositionalEmbedding])
def test_v3_positions_gradcheck(module_cls):
    torch.manual_seed(0)
    module = module_cls(max_len=6, d_model=4).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda x, *params: module(x), (x, *module.parameters()), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_v4_block_gradcheck_with_masks(norm_first, activation):
    torch.manual_seed(0)
    block = TransformerBlock(
        6, 2, 5, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
    ).double()
    gen = torch.Generator().manual_seed(1)
    src = torch.randn(2, 4, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    padding = torch.tensor([[False, False, True, False], [False, True, False, False]])
    params = tuple(block.parameters())

    def fn(src, *weights):
        return block.forward_with_attention(src, src_key_padding_mask=padding, is_causal=True)

    assert gradcheck(fn, (src, *params), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("path", ["fused", "explicit"])
def test_v5_gpt_gradcheck(path):
    """Every parameter of a tiny GPT, through both attention paths (tied head included)."""
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=5, n_positions=4, n_embd=4, n_layer=2, n_head=2, n_inner=3,
        embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0,
    )  # fmt: skip
    gpt = GPT(config).double()
    with torch.no_grad():
        for p in gpt.parameters():
            p.add_(0.5 * torch.randn_like(p))  # away from GPT-2's small initial weights
    idx = torch.tensor([[1, 3, 0, 4], [2, 2, 0, 1]])
    params = tuple(gpt.parameters())

    def fn(*weights):
        return gpt(idx) if path == "fused" else gpt.forward_with_attention(idx)[0]

    assert gradcheck(fn, params, eps=1e-6, atol=1e-8)
