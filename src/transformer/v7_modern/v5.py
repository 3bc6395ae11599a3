"""v5 state dicts to and from v7 at GPT-2's settings: only the MLP's names move.

v5's block keeps its MLP as ``linear1``/``linear2``; v7's block holds it in ``mlp`` (so
SwiGLU can take its place). Every other name and every tensor is the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from transformer.v5_gpt import GPT
from transformer.v7_modern.config import ModernConfig
from transformer.v7_modern.model import ModernGPT

V5_MLP = re.compile(r"^(h\.\d+\.)(linear[12]\.(?:weight|bias))$")
V7_MLP = re.compile(r"^(h\.\d+\.)mlp\.(linear[12]\.(?:weight|bias))$")


def from_v5_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A v5 ``GPT`` state dict -> the same weights under v7's names."""
    return {V5_MLP.sub(r"\1mlp.\2", key): value for key, value in state.items()}


def to_v5_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A v7 state dict at GPT-2's settings -> v5's names (the inverse of the above)."""
    return {V7_MLP.sub(r"\1\2", key): value for key, value in state.items()}


def from_gpt(gpt: GPT) -> ModernGPT:
    """A v7 model with every switch at GPT-2's setting and ``gpt``'s weights (copied)."""
    if not isinstance(gpt, GPT):
        raise TypeError(f"gpt: expected a transformer.v5_gpt.GPT, got {type(gpt).__name__}")
    model = ModernGPT(ModernConfig.from_gpt_config(gpt.config))
    model.load_state_dict(from_v5_state_dict(gpt.state_dict()))
    return model.to(gpt.wte.weight.device, gpt.wte.weight.dtype)
