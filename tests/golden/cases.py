"""Golden cases: a fixed seed and a fixed input for each stage, and what they produce.

Regenerate the stored files only when a stage's numbers change on purpose:
    poetry run python -m tests.golden.cases [v1 v2 ...]
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from transformer import ModelConfig, get_stage
from transformer.v1_basic_attention import MultiHeadAttention as SeedMultiHeadAttention
from transformer.v1_basic_attention import attention
from transformer.v2_multihead import MultiHeadAttention
from transformer.v3_positional import PositionalModel, sinusoidal_encoding
from transformer.v4_block import TransformerBlock, TransformerModel
from transformer.v5_gpt import GPT, GPTConfig
from transformer.v7_modern import ModernConfig, ModernGPT

GOLDEN_DIR = Path(__file__).parent
SEED = 1234


def _prefixed(prefix: str, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {f"{prefix}.{name}": t.detach().clone() for name, t in tensors.items()}


def _model_case(version: str, build=None, prefix: str = "model") -> dict[str, Tensor]:
    """The stage's sequence model (or ``build(config)``) on fixed tokens."""
    torch.manual_seed(SEED)
    stage = get_stage(version)  # each stage takes the sizes it has (v1: one head, no max_len)
    sizes = {"d_model": 16, "num_heads": 4, "num_layers": 2, "max_len": 8}
    config = ModelConfig(12, **{k: v for k, v in sizes.items() if stage.accepts(k, v)})
    model = (build or get_stage(version).build_model)(config)
    tokens = torch.randint(0, 12, (2, 6))
    logits, maps = model(tokens, return_attention=True)
    out = {"tokens": tokens, "logits": logits}
    out.update({f"attention{i}": w for i, w in enumerate(maps)})
    out.update({f"param.{k}": v for k, v in model.state_dict().items()})
    return _prefixed(prefix, out)


def golden_v1() -> dict[str, Tensor]:
    torch.manual_seed(SEED)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 4)
    mask = torch.rand(5, 7) > 0.3
    mask[:, 0] = True
    out, weights = attention(q, k, v, mask)
    values = _prefixed(
        "attention", {"q": q, "k": k, "v": v, "mask": mask, "out": out, "weights": weights}
    )
    torch.manual_seed(SEED)
    mha = SeedMultiHeadAttention(16, 4)
    x, m = torch.randn(2, 6, 16), torch.ones(6, 6).tril()
    out, weights = mha(x, x, x, m)
    values |= _prefixed("mha", {"x": x, "out": out, "weights": weights})
    values |= _prefixed("mha.param", dict(mha.state_dict()))
    return values | _model_case("v1")


def golden_v2() -> dict[str, Tensor]:
    torch.manual_seed(SEED)
    mha = MultiHeadAttention(16, 4, kdim=8, vdim=12, add_bias_kv=True)
    q, k, v = torch.randn(5, 2, 16), torch.randn(7, 2, 8), torch.randn(7, 2, 12)
    attn_mask = torch.rand(5, 7) > 0.7
    key_padding_mask = torch.rand(2, 7) > 0.7
    out, weights = mha(
        q, k, v, key_padding_mask=key_padding_mask, attn_mask=attn_mask, average_attn_weights=False
    )
    values = _prefixed(
        "mha",
        {
            "q": q,
            "k": k,
            "v": v,
            "attn_mask": attn_mask,
            "key_padding_mask": key_padding_mask,
            "out": out,
            "weights": weights,
        },
    )
    values |= _prefixed("mha.param", dict(mha.state_dict()))
    return values | _model_case("v2")


def golden_v3() -> dict[str, Tensor]:
    values = {"sinusoidal.table": sinusoidal_encoding(10, 7)}
    values |= _model_case("v3", lambda c: PositionalModel(c, positional="learned"), "learned")
    return values | _model_case("v3")


def _block_case(norm_first: bool, activation: str) -> dict[str, Tensor]:
    torch.manual_seed(SEED)
    block = TransformerBlock(
        16, 4, 24, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
    )
    x, padding = torch.randn(2, 6, 16), torch.rand(2, 6) > 0.7
    padding[:, 0] = False
    out, weights = block.forward_with_attention(x, src_key_padding_mask=padding, is_causal=True)
    values = {"x": x, "padding": padding, "out": out, "weights": weights}
    values |= {f"param.{k}": v for k, v in block.state_dict().items()}
    return _prefixed(f"block.{'pre' if norm_first else 'post'}.{activation}", values)


def golden_v4() -> dict[str, Tensor]:
    values = _block_case(norm_first=False, activation="relu") | _block_case(True, "gelu")
    pre_norm = _model_case("v4", lambda c: TransformerModel(c, norm_first=True), "prenorm")
    return values | pre_norm | _model_case("v4")


def golden_v5() -> dict[str, Tensor]:
    """The GPT's logits, greedy and sampled continuations (past n_positions), and the contract."""
    torch.manual_seed(SEED)
    gpt = GPT(GPTConfig(vocab_size=12, n_positions=8, n_embd=16, n_layer=2, n_head=4)).eval()
    prompt = torch.randint(0, 12, (2, 3))
    sampler = torch.Generator().manual_seed(SEED)
    values = {
        "prompt": prompt,
        "logits": gpt(prompt),
        "greedy": gpt.generate(prompt, 7, temperature=0),
        "sampled": gpt.generate(prompt, 7, temperature=0.8, top_k=5, generator=sampler),
    }
    values |= {f"param.{k}": v for k, v in gpt.state_dict().items()}
    return _prefixed("gpt", values) | _model_case("v5")


def golden_v7() -> dict[str, Tensor]:
    """A Llama-shaped model (grouped-query, untied) past its n_positions, and the contract."""
    torch.manual_seed(SEED)
    config = ModernConfig.llama(
        vocab_size=12, n_positions=8, n_embd=16, n_layer=2, n_head=4, n_kv_head=2,
        tie_word_embeddings=False, rope_theta=500.0,
    )  # fmt: skip
    model = ModernGPT(config).eval()
    tokens = torch.randint(0, 12, (2, 11))  # longer than n_positions: RoPE has no limit
    logits, maps = model.forward_with_attention(tokens)
    values = {"tokens": tokens, "logits": logits, "greedy": model.generate(tokens[:, :3], 7, 0)}
    values |= {f"attention{i}": w for i, w in enumerate(maps)}
    values |= {f"param.{k}": v for k, v in model.state_dict().items()}
    return _prefixed("modern", values) | _model_case("v7")


GOLDEN = {
    "v1": golden_v1,
    "v2": golden_v2,
    "v3": golden_v3,
    "v4": golden_v4,
    "v5": golden_v5,
    "v7": golden_v7,
}


def path(version: str) -> Path:
    return GOLDEN_DIR / f"{version}.pt"


if __name__ == "__main__":
    import sys

    for version in sys.argv[1:] or GOLDEN:  # the versions named, or every stage
        torch.save(GOLDEN[version](), path(version))
        print(f"wrote {path(version)}")
