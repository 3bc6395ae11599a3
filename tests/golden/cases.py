"""Golden cases: a fixed seed and a fixed input for each stage, and what they produce.

Regenerate the stored files only when a stage's numbers change on purpose:
    poetry run python -m tests.golden.cases
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from transformer import ModelConfig, get_stage
from transformer.v1_basic_attention import MultiHeadAttention as SeedMultiHeadAttention
from transformer.v1_basic_attention import attention
from transformer.v2_multihead import MultiHeadAttention

GOLDEN_DIR = Path(__file__).parent
SEED = 1234


def _prefixed(prefix: str, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {f"{prefix}.{name}": t.detach().clone() for name, t in tensors.items()}


def _model_case(version: str) -> dict[str, Tensor]:
    torch.manual_seed(SEED)
    config = ModelConfig(vocab_size=12, d_model=16, num_heads=4, num_layers=2)
    model = get_stage(version).build_model(config)
    tokens = torch.randint(0, 12, (2, 6))
    logits = model(tokens)
    out = {"tokens": tokens, "logits": logits}
    out.update({f"attention{i}": w for i, w in enumerate(model.attention_maps)})
    out.update({f"param.{k}": v for k, v in model.state_dict().items()})
    return _prefixed("model", out)


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


GOLDEN = {"v1": golden_v1, "v2": golden_v2}


def path(version: str) -> Path:
    return GOLDEN_DIR / f"{version}.pt"


if __name__ == "__main__":
    for version, make in GOLDEN.items():
        torch.save(make(), path(version))
        print(f"wrote {path(version)}")
