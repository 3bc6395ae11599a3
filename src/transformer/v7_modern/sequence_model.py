"""v7's sequence model: the stage contract's view of a ``ModernGPT``.

Through the contract v7 defaults to Llama's settings (RoPE, RMSNorm, SwiGLU, half as many
key/value heads as query heads, no biases); each switch is an option, so
``--option positions=learned`` or ``--option num_kv_heads=4`` turns one back.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from transformer._checks import check_bool, check_positive_int
from transformer.contract import ModelConfig, SequenceModel, Setting, get_stage
from transformer.v5_gpt import SETTINGS as V5_SETTINGS
from transformer.v5_gpt.model import DecoderSequenceModel, gpt_sizes
from transformer.v7_modern.config import MLPS, NORMS, POSITIONS, ModernConfig, check_rope_theta
from transformer.v7_modern.model import ModernGPT


def half_the_heads(resolved: dict[str, Any]) -> int:
    """Grouped-query attention's default: num_heads / 2 key/value heads (1 head: 1)."""
    heads = resolved["num_heads"]
    return heads // 2 if heads % 2 == 0 else heads


def divides_num_heads(name: str, value: Any, resolved: dict[str, Any]) -> None:
    heads = resolved["num_heads"]
    if heads % value:
        raise ValueError(
            f"{name}: expected a divisor of num_heads={heads} (each key/value head serves "
            f"num_heads / {name} query heads), got {value}"
        )


def optional_positive_int(name: str, value: Any) -> None:
    if value is not None:
        check_positive_int(name, value)


SETTINGS = V5_SETTINGS | {
    # NEW in v7: the four switches, at Llama's settings; v5's are in the choices
    "positions": Setting("rope", choices=POSITIONS),
    "rope_theta": Setting(10000.0, check_rope_theta),
    "norm": Setting("rmsnorm", choices=NORMS),
    "mlp": Setting("swiglu", choices=MLPS),
    "num_kv_heads": Setting(
        None, optional_positive_int, derive=half_the_heads, relate=divides_num_heads
    ),
    "bias": Setting(False, check_bool),
    "tie_embeddings": Setting(True, check_bool),
}


def modern_config(config: ModelConfig) -> ModernConfig:
    """A v7 ModelConfig -> ModernConfig; each unset dropout takes ``config.dropout``."""
    config = get_stage("v7").resolve(config)
    options = config.options
    return ModernConfig(
        **gpt_sizes(config),
        positions=options["positions"],
        rope_theta=float(options["rope_theta"]),
        norm=options["norm"],
        mlp=options["mlp"],
        n_kv_head=options["num_kv_heads"],
        bias=options["bias"],
        tie_word_embeddings=options["tie_embeddings"],
    )


class ModernSequenceModel(DecoderSequenceModel):
    """A ``ModernGPT`` behind the stage contract. With RoPE, ``max_len`` is the training
    context and longer inputs run; with learned positions it is a limit."""

    def __init__(self, config: ModelConfig) -> None:
        config = get_stage("v7").resolve(config)
        super().__init__(config, ModernGPT(modern_config(config)))

    def check_tokens(self, tokens: Tensor) -> None:
        self.gpt.check_input(tokens, "tokens")


def build_sequence_model(config: ModelConfig) -> SequenceModel:
    """The stage contract's entry point for v7."""
    return ModernSequenceModel(config)
