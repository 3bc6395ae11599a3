"""Where the inspection tools look inside a stage's sequence model.

Every registered next-token stage builds one of two kinds of model through the contract:

* a :class:`~transformer.token_model.TokenModel` (v1-v4): embedding (+ positions), layers
  that are either bare attention (v1-v3, no residual connection: each layer's output
  replaces its input) or v4's transformer blocks (post-norm by default, pre-norm with
  ``norm_first``), then ``final_norm`` and ``head``;
* a :class:`~transformer.v5_gpt.model.DecoderSequenceModel` (v5 GPT, v7 ModernGPT): embedding
  (+ learned positions), pre-norm blocks adding to a residual stream, ``ln_f`` and
  ``lm_head``.

:func:`model_parts` finds, for each layer, its attention module (``num_heads``,
``head_dim``), its output projection (v1's ``w_o``, everyone else's ``out_proj``; its input
is the merged heads (B, T, H·D)), its feed-forward output, and the module call at which the
layer's input can be seen with a forward hook. The stages' layers are run through methods
(``self_attend``, ``forward_with_attention``), not through ``__call__``, so hooks go on the
submodules they call.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from transformer.contract import SequenceModel
from transformer.token_model import TokenModel
from transformer.v4_block import TransformerBlock
from transformer.v5_gpt.model import DecoderSequenceModel
from transformer.v7_modern.block import ModernBlock

STAGES = "v1, v2, v3, v4, v5 or v7"  # the registered next-token stages


@dataclass(frozen=True)
class HookPoint:
    """A tensor seen at one module call: its first input (``"input"``, a forward pre-hook)
    or its output (``"output"``, a forward hook), multiplied by ``scale``."""

    module: nn.Module
    where: str
    scale: float = 1.0


@dataclass(frozen=True)
class LayerParts:
    """One layer: its attention module, output projection and feed-forward output (None for
    the bare attention layers of v1-v3)."""

    attention: nn.Module
    out_proj: nn.Linear
    mlp_output: nn.Module | None

    @property
    def num_heads(self) -> int:
        return self.attention.num_heads

    @property
    def head_dim(self) -> int:
        return self.attention.head_dim


@dataclass(frozen=True)
class ModelParts:
    """The parts of one model: its layers, the ``num_layers + 1`` points where the residual
    stream is seen (the input of each layer, then the last layer's output), the final norm
    and the unembedding, and whether the layers add to a residual stream (pre-norm)."""

    layers: list[LayerParts]
    residual: list[HookPoint]
    final_norm: nn.Module
    unembed: nn.Linear
    decoder: bool


def check_model(model: object) -> None:
    """Raise unless ``model`` is a next-token stage's SequenceModel that these tools know."""
    if not isinstance(model, TokenModel | DecoderSequenceModel):
        what = type(model).__name__
        kind = "a SequenceModel of another kind" if isinstance(model, SequenceModel) else what
        raise TypeError(
            f"model: expected the model get_stage(version).build_model(...) gives for {STAGES}, "
            f"got {kind} ({what})"
        )


def model_parts(model: SequenceModel) -> ModelParts:
    """The parts of ``model`` (see the module docstring)."""
    check_model(model)
    if isinstance(model, DecoderSequenceModel):
        return decoder_parts(model)
    return token_model_parts(model)


def attention_parts(attention: nn.Module, mlp_output: nn.Module | None) -> LayerParts:
    """A layer's parts from its attention module (v1's projection is ``w_o``)."""
    out_proj = attention.out_proj if hasattr(attention, "out_proj") else attention.w_o
    return LayerParts(attention, out_proj, mlp_output)


def decoder_parts(model: DecoderSequenceModel) -> ModelParts:
    """v5/v7: each block's input is what its ``norm1`` reads; the last output, ``ln_f``'s."""
    gpt = model.gpt
    layers = [attention_parts(block.self_attn, mlp_output_of(block)) for block in gpt.h]
    residual = [HookPoint(block.norm1, "input") for block in gpt.h]
    residual.append(HookPoint(gpt.ln_f, "input"))
    return ModelParts(layers, residual, gpt.ln_f, gpt.lm_head, decoder=True)


def mlp_output_of(block: nn.Module) -> nn.Module:
    """The module whose output is the block's feed-forward output (before its dropout)."""
    if isinstance(block, ModernBlock):
        return block.mlp
    return block.linear2


def token_model_parts(model: TokenModel) -> ModelParts:
    """v1-v4: see :func:`layer_input_points` for where each layer's input is seen."""
    layers = []
    for layer in model.layers:
        if isinstance(layer, TransformerBlock):
            layers.append(attention_parts(layer.self_attn, mlp_output_of(layer)))
        else:
            layers.append(attention_parts(layer, None))
    residual = layer_input_points(model, layers)
    residual.append(HookPoint(model.final_norm, "input"))
    return ModelParts(layers, residual, model.final_norm, model.head, decoder=False)


def layer_input_points(model: TokenModel, layers: list[LayerParts]) -> list[HookPoint]:
    """Where the input of each of a TokenModel's layers is seen.

    A pre-norm block's input is what its ``norm1`` reads. Otherwise layer 0 reads the
    embedding (the positions' output, or the token embedding times ``embedding_scale``)
    and layer l > 0 reads layer l-1's output: a post-norm block's ``norm2`` output, or a
    bare attention layer's output projection (v1-v3 have no residual connection).
    """
    if model.positions is not None:
        embedding = HookPoint(model.positions, "output")
    else:
        embedding = HookPoint(model.embed, "output", model.embedding_scale)
    points = []
    for index, layer in enumerate(model.layers):
        if isinstance(layer, TransformerBlock) and layer.norm_first:
            points.append(HookPoint(layer.norm1, "input"))
        elif index == 0:
            points.append(embedding)
        else:
            points.append(layer_output_point(model.layers[index - 1], layers[index - 1]))
    return points


def layer_output_point(layer: nn.Module, parts: LayerParts) -> HookPoint:
    """Where a post-norm block's or a bare attention layer's output is seen."""
    if isinstance(layer, TransformerBlock):
        return HookPoint(layer.norm2, "output")
    return HookPoint(parts.out_proj, "output")
