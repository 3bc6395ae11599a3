"""The stage contract: how experiments, benchmarks and lab checks talk to any stage.

Everything outside a stage uses only what is defined here:

* ``get_stage("v2")`` returns a :class:`Stage` (version, subpackage, one-line idea);
  ``list_stages()`` lists them in order. An unknown version raises :class:`UnknownStageError`,
  whose message lists the known ones.
* ``stage.build_model(ModelConfig(vocab_size=...))`` returns a :class:`SequenceModel`:
  ``model(tokens)`` maps token ids ``(batch, seq)`` to logits ``(batch, seq, vocab)``.
* After a forward pass, ``model.attention_maps`` holds one tensor per layer, each
  ``(batch, num_heads, seq, seq)``: row ``i`` of head ``h`` is where query ``i`` looked.

Adding a stage means writing a subpackage whose ``__init__`` exposes
``build_sequence_model(config) -> SequenceModel`` and adding one ``Stage`` line to
``_REGISTRY`` below. No experiment changes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from torch import Tensor, nn

from transformer._checks import (
    check_divisible,
    check_positive_int,
    check_probability,
    check_token_ids,
)


@dataclass(frozen=True)
class ModelConfig:
    """Size of a sequence model. Stages ignore the fields they have no use for."""

    vocab_size: int
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 1
    dropout: float = 0.0
    causal: bool = True  # each position sees only itself and earlier positions
    max_len: int = 512  # longest sequence, for stages with positions

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "num_heads", "num_layers", "max_len"):
            check_positive_int(name, getattr(self, name))
        check_divisible("d_model", self.d_model, "num_heads", self.num_heads)
        check_probability("dropout", self.dropout)
        if not isinstance(self.causal, bool):
            raise TypeError(f"causal: expected a bool, got {self.causal!r}")


class SequenceModel(nn.Module):
    """Token ids (batch, seq) -> logits (batch, seq, vocab_size), with readable attention.

    Subclasses implement ``logits(tokens)`` and store each layer's weights
    (batch, num_heads, seq, seq) in ``self.attention_maps`` during it.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.attention_maps: list[Tensor] = []

    def check_tokens(self, tokens: Tensor) -> None:
        check_token_ids("tokens", tokens, self.config.vocab_size)

    def logits(self, tokens: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, tokens: Tensor) -> Tensor:
        self.check_tokens(tokens)
        self.attention_maps = []
        return self.logits(tokens)  # (B, T, vocab_size)


class UnknownStageError(ValueError):
    """Raised for a version that is not registered; the message lists the known ones."""


@dataclass(frozen=True)
class Stage:
    """A registered stage: its version, its subpackage and the one idea it adds."""

    version: str
    module: str
    idea: str

    def load(self):
        """Import the stage's subpackage."""
        return importlib.import_module(self.module)

    def build_model(self, config: ModelConfig) -> SequenceModel:
        """The stage's token-in/logits-out model."""
        return self.load().build_sequence_model(config)


_REGISTRY: dict[str, Stage] = {
    stage.version: stage
    for stage in (
        Stage(
            "v1",
            "transformer.v1_basic_attention",
            "Scaled dot-product attention: each token takes a softmax(QKᵀ/√d_k)-weighted "
            "average of the values.",
        ),
        Stage(
            "v2",
            "transformer.v2_multihead",
            "Multi-head attention: several heads attend in parallel, a drop-in for "
            "nn.MultiheadAttention.",
        ),
        Stage(
            "v3",
            "transformer.v3_positional",
            "Positional encoding: a sinusoidal (or learned) vector per position is added to "
            "each token, so order is visible.",
        ),
        Stage(
            "v4",
            "transformer.v4_block",
            "The transformer block: attention and feed-forward, each with residual, LayerNorm "
            "and dropout; N stacked.",
        ),
        Stage(
            "v5",
            "transformer.v5_gpt",
            "GPT: a decoder-only stack of causal pre-norm blocks whose tied head predicts the next "
            "token; equals GPT-2.",
        ),
    )
}


def list_stages() -> list[Stage]:
    """Every registered stage, in order."""
    return list(_REGISTRY.values())


def get_stage(version: str) -> Stage:
    """The stage registered as ``version`` (for example ``"v2"``)."""
    if version not in _REGISTRY:
        known = ", ".join(_REGISTRY)
        raise UnknownStageError(f"version: unknown stage {version!r}; known stages: {known}")
    return _REGISTRY[version]
