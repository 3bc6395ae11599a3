"""``run_with_cache``: one forward pass through the contract, and what each layer saw and wrote.

The activations are read with forward hooks (``register_forward_hook`` and
``register_forward_pre_hook``) on the modules the layers call; every hook is removed when the
pass ends, also when it raises. The attention maps are the contract's own:
``model(tokens, return_attention=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from transformer.inspect.parts import HookPoint, LayerParts, model_parts
from transformer.v1_basic_attention import split_heads

# (module, "input" or "output", hook): one hook to register
Hook = tuple[nn.Module, str, Callable]


@dataclass
class ActivationCache:
    """What one forward pass computed, per layer (L layers, H heads of size D, d_model E).

    * ``logits`` (B, T, V): the model's output.
    * ``residual``: L + 1 tensors (B, T, E). ``residual[l]`` is the input of layer l and
      ``residual[L]`` the last layer's output (what the final norm reads). In v5, v7 and
      pre-norm v4 this is the residual stream the layers add to. v1-v3 have no residual
      connection: each attention layer's output replaces its input, so ``residual[l]`` is
      simply what layer l reads (``residual[0]`` the embedding, with positions from v3 on).
      Post-norm v4 blocks normalise their sum, so there ``residual[l + 1]`` is block l's
      normalised output.
    * ``patterns``: L tensors (B, H, T, T), the contract's attention maps; row t of head h
      is where query t looked.
    * ``head_inputs``: L tensors (B, H, T, D), each head's output before the output
      projection (its slice of the merged heads that ``out_proj`` reads).
    * ``head_outputs``: L tensors (B, H, T, E), each head's contribution in d_model space:
      its slice of the merged heads through its columns of ``out_proj``. Summed over heads,
      plus ``out_proj``'s bias, it is the layer's attention output.
    * ``attention_outputs``: L tensors (B, T, E), the output projection's output.
    * ``mlp_outputs``: L tensors (B, T, E), each block's feed-forward output before its
      dropout, or None for the bare attention layers of v1-v3.
    """

    logits: Tensor
    residual: list[Tensor]
    patterns: list[Tensor]
    head_inputs: list[Tensor]
    head_outputs: list[Tensor]
    attention_outputs: list[Tensor]
    mlp_outputs: list[Tensor] | None


@contextmanager
def hooked(hooks: Sequence[Hook]) -> Iterator[None]:
    """Register ``hooks`` for the duration of the block; all are removed however it ends."""
    handles = []
    try:
        for module, where, hook in hooks:
            if where == "input":
                handles.append(module.register_forward_pre_hook(hook))
            else:
                handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and no gradients inside; each module's mode restored after."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes.items():
            module.training = training


def recorder(store: dict[str, Tensor], key: str, point: HookPoint) -> Hook:
    """A hook that stores the tensor seen at ``point`` (times its scale) under ``key``."""

    def keep(tensor: Tensor) -> None:
        store[key] = tensor if point.scale == 1.0 else tensor * point.scale

    if point.where == "input":
        return point.module, "input", lambda module, args: keep(args[0])
    return point.module, "output", lambda module, args, output: keep(output)


def cache_hooks(layers: list[LayerParts], residual: list[HookPoint], store: dict) -> list[Hook]:
    """The hooks ``run_with_cache`` registers: residual points, merged heads, outputs."""
    hooks = [recorder(store, f"residual.{i}", point) for i, point in enumerate(residual)]
    for index, layer in enumerate(layers):
        hooks.append(recorder(store, f"merged.{index}", HookPoint(layer.out_proj, "input")))
        hooks.append(recorder(store, f"attention.{index}", HookPoint(layer.out_proj, "output")))
        if layer.mlp_output is not None:
            hooks.append(recorder(store, f"mlp.{index}", HookPoint(layer.mlp_output, "output")))
    return hooks


def taken(store: dict[str, Tensor], key: str) -> Tensor:
    """``store[key]``, or an error saying that the hook for it never ran."""
    if key not in store:
        raise RuntimeError(f"run_with_cache: the hook for {key} never ran during the forward pass")
    return store[key]


def per_head_outputs(merged: Tensor, layer: LayerParts) -> tuple[Tensor, Tensor]:
    """merged heads (B, T, H·D) -> head inputs (B, H, T, D) and outputs in d_model space
    (B, H, T, E): head h's slice through ``out_proj`` columns h·D .. (h+1)·D."""
    z = split_heads(merged, layer.num_heads)  # (B, H, T, D)
    weight = layer.out_proj.weight  # (E, H·D)
    columns = weight.reshape(weight.shape[0], layer.num_heads, layer.head_dim)  # (E, H, D)
    return z, torch.einsum("bhtd,ehd->bhte", z, columns)  # (B, H, T, D), (B, H, T, E)


def run_with_cache(model: nn.Module, tokens: Tensor) -> ActivationCache:
    """Run ``model(tokens, return_attention=True)`` once and cache its activations.

    model: a next-token stage's model from ``get_stage(v).build_model``; tokens (B, T) ids.
    Runs in eval mode (no dropout) without gradients; the model's modes are restored after.
    See :class:`ActivationCache` for what each field holds.
    """
    parts = model_parts(model)
    store: dict[str, Tensor] = {}
    with evaluating(model):
        with hooked(cache_hooks(parts.layers, parts.residual, store)):
            logits, patterns = model(tokens, return_attention=True)  # (B, T, V), L x (B, H, T, T)
        merged = [taken(store, f"merged.{i}") for i in range(len(parts.layers))]
        heads = [per_head_outputs(m, layer) for m, layer in zip(merged, parts.layers, strict=True)]
    blocks = all(layer.mlp_output is not None for layer in parts.layers)
    mlps = [taken(store, f"mlp.{i}") for i in range(len(parts.layers))] if blocks else None
    return ActivationCache(
        logits=logits,
        residual=[taken(store, f"residual.{i}") for i in range(len(parts.residual))],
        patterns=list(patterns),
        head_inputs=[z for z, _ in heads],
        head_outputs=[out for _, out in heads],
        attention_outputs=[taken(store, f"attention.{i}") for i in range(len(parts.layers))],
        mlp_outputs=mlps,
    )
