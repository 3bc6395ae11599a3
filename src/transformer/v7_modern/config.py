"""The size and the four switches of a modern decoder: v5's ``GPTConfig`` plus one field each.

=====================  ===================  ==========================
switch                 GPT-2 (v5)           Llama
=====================  ===================  ==========================
``positions``          ``"learned"``        ``"rope"`` (``rope_theta``)
``norm``               ``"layernorm"``      ``"rmsnorm"``
``mlp``                ``"gelu"``           ``"swiglu"``
``n_kv_head``          ``n_head`` (MHA)     fewer: GQA, 1: MQA
``bias``               ``True``             ``False``
``tie_word_embeddings``  ``True``           either
=====================  ===================  ==========================

The defaults are GPT-2's, so ``ModernConfig(vocab_size=...)`` builds v5's model exactly;
``ModernConfig.llama(...)`` turns every switch to Llama's setting.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from transformer._checks import check_bool, check_divisible, check_positive_int
from transformer.v5_gpt import GPTConfig

POSITIONS = ("learned", "rope")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu")


def swiglu_hidden_dim(inner_dim: int) -> int:
    """The SwiGLU width whose three matrices hold as many weights as GELU's two.

    A GELU MLP of width ``inner_dim`` has 2·d·inner_dim weights; SwiGLU (gate, up, down)
    has 3·d·hidden, so hidden = 2/3 · inner_dim, rounded to the nearest integer (exact
    whenever ``inner_dim`` is a multiple of 3; Llama also rounds up to a multiple of 256).
    """
    return max(1, round(2 * inner_dim / 3))


def check_rope_theta(name: str, value: Any) -> None:
    """RoPE's base: a finite number > 1 (1 would give every pair the same angle, 0 turns)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 < value < math.inf:
        raise ValueError(f"{name}: expected a finite number > 1, got {value!r}")


@dataclass(frozen=True)
class ModernConfig(GPTConfig):
    """``GPTConfig`` plus the four switches (and the two that Llama also turns off).

    ``n_kv_head`` None means ``n_head`` (multi-head attention); it must divide ``n_head``.
    ``n_inner`` None means ``4 * n_embd`` for GELU and ``swiglu_hidden_dim(4 * n_embd)``
    for SwiGLU. With ``positions="rope"``, ``n_positions`` is the training context, not a
    limit: rotary angles exist for every position.
    """

    positions: str = "learned"
    rope_theta: float = 10000.0
    norm: str = "layernorm"
    mlp: str = "gelu"
    n_kv_head: int | None = None
    bias: bool = True  # biases in every linear layer and LayerNorm
    tie_word_embeddings: bool = True  # lm_head.weight is wte.weight

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, kinds in (("positions", POSITIONS), ("norm", NORMS), ("mlp", MLPS)):
            if getattr(self, name) not in kinds:
                raise ValueError(
                    f"{name}: expected one of {', '.join(map(repr, kinds))}, "
                    f"got {getattr(self, name)!r}"
                )
        check_rope_theta("rope_theta", self.rope_theta)
        if self.n_kv_head is not None:
            check_positive_int("n_kv_head", self.n_kv_head)
            check_divisible("n_head", self.n_head, "n_kv_head", self.n_kv_head)
        check_bool("bias", self.bias)
        check_bool("tie_word_embeddings", self.tie_word_embeddings)

    @classmethod
    def llama(cls, vocab_size: int, **fields: Any) -> ModernConfig:
        """Every switch at Llama's setting (RoPE, RMSNorm, SwiGLU, no biases, no dropout);
        ``fields`` sets sizes or overrides any switch."""
        llama = {
            "positions": "rope",
            "norm": "rmsnorm",
            "mlp": "swiglu",
            "bias": False,
            "layer_norm_epsilon": 1e-6,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            "resid_pdrop": 0.0,
        }
        return cls(vocab_size=vocab_size, **(llama | fields))

    @property
    def kv_heads(self) -> int:
        """How many key/value heads: ``n_kv_head``, or ``n_head`` when that is None."""
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def inner_dim(self) -> int:
        """The MLP's hidden width (see the class docstring)."""
        if self.n_inner is not None:
            return self.n_inner
        return 4 * self.n_embd if self.mlp == "gelu" else swiglu_hidden_dim(4 * self.n_embd)

    def to_gpt_config(self) -> GPTConfig:
        """v5's config, when every switch is at GPT-2's setting (ValueError otherwise)."""
        gpt2 = {"positions": "learned", "norm": "layernorm", "mlp": "gelu", "bias": True}
        gpt2 |= {"tie_word_embeddings": True}
        for name, value in gpt2.items():
            if getattr(self, name) != value:
                raise ValueError(f"{name}: expected {value!r} for a v5 GPT, got "
                                 f"{getattr(self, name)!r}")  # fmt: skip
        if self.kv_heads != self.n_head:
            raise ValueError(
                f"n_kv_head: expected n_head={self.n_head} for a v5 GPT, got {self.n_kv_head}"
            )
        names = [f.name for f in dataclasses.fields(GPTConfig)]
        return GPTConfig(**{name: getattr(self, name) for name in names})

    @classmethod
    def from_gpt_config(cls, config: GPTConfig) -> ModernConfig:
        """v5's config with every switch at GPT-2's setting."""
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config: expected a GPTConfig, got {type(config).__name__}")
        names = [f.name for f in dataclasses.fields(GPTConfig)]
        return cls(**{name: getattr(config, name) for name in names})
