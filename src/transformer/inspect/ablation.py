"""Head ablation: knock out some heads and measure what the model loses.

A head's output is its slice of the merged heads (B, T, H·D) that the layer's output
projection reads; a forward pre-hook on that projection replaces the slice:

* ``mode="zero"``: with zeros, so the head writes nothing (the projection's bias stays);
* ``mode="mean"``: with the head's mean output over the batch and the positions of the
  same ``tokens``, taken from the unablated pass, so the head writes the same vector
  everywhere and carries no information about the input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn import functional as F

from transformer._checks import check_shape, check_tensor, check_token_ids
from transformer.inspect.cache import Hook, evaluating, hooked
from transformer.inspect.parts import LayerParts, model_parts

MODES = ("zero", "mean")
IGNORE_INDEX = -100  # a target that is not scored, as in transformer.lm and cross_entropy


@dataclass(frozen=True)
class AblationResult:
    """Loss (mean cross-entropy over the scored positions) and accuracy (the fraction of
    scored positions whose top logit is the target) before and after, and both passes'
    logits. A position is scored unless its target is ``IGNORE_INDEX`` (-100)."""

    loss_before: float
    loss_after: float
    accuracy_before: float
    accuracy_after: float
    logits_before: Tensor
    logits_after: Tensor

    @property
    def loss_change(self) -> float:
        """loss_after - loss_before: positive when the heads helped."""
        return self.loss_after - self.loss_before

    @property
    def accuracy_change(self) -> float:
        """accuracy_after - accuracy_before: negative when the heads helped."""
        return self.accuracy_after - self.accuracy_before


def check_heads(heads: object, layers: list[LayerParts]) -> dict[int, list[int]]:
    """``heads`` (an iterable of (layer, head) pairs) -> {layer: [heads]}, each in range."""
    num_layers = len(layers)
    num_heads = layers[0].num_heads
    wanted = f"(layer, head) with layer < {num_layers} and head < {num_heads}"
    if isinstance(heads, str | bytes) or not isinstance(heads, Iterable):
        raise TypeError(f"heads: expected an iterable of {wanted}, got {heads!r}")
    chosen: dict[int, list[int]] = {}
    for pair in heads:
        ints = isinstance(pair, tuple | list) and len(pair) == 2
        ints = ints and all(isinstance(i, int) and not isinstance(i, bool) for i in pair)
        if not ints or not (0 <= pair[0] < num_layers and 0 <= pair[1] < num_heads):
            shown = tuple(pair) if isinstance(pair, list) else pair
            raise ValueError(f"heads: expected {wanted}, got {shown!r}")
        chosen.setdefault(pair[0], []).append(pair[1])
    return chosen


def check_targets(targets: object, tokens: Tensor, vocab_size: int) -> None:
    """Raise unless ``targets`` is (B, T) like ``tokens``, of ids below ``vocab_size`` or
    ``IGNORE_INDEX``, with at least one scored position."""
    check_tensor("targets", targets)
    scored = targets != IGNORE_INDEX  # (B, T)
    check_token_ids("targets", targets.where(scored, 0), vocab_size)
    check_shape("targets", targets, batch=tokens.shape[0], seq=tokens.shape[1])
    if not scored.any():
        raise ValueError(
            f"targets: expected at least one scored position, got every target {IGNORE_INDEX}"
        )


def loss_and_accuracy(logits: Tensor, targets: Tensor) -> tuple[float, float]:
    """logits (B, T, V), targets (B, T) -> (mean cross-entropy, fraction argmax == target),
    both over the scored positions."""
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
    scored = targets != IGNORE_INDEX  # (B, T)
    right = int(((logits.argmax(dim=-1) == targets) & scored).sum())  # top logit is the target
    return float(loss), right / int(scored.sum())


def mean_recorder(index: int, layer: LayerParts, heads: list[int], means: dict) -> Hook:
    """A pre-hook on layer ``index``'s output projection keeping each chosen head's mean over
    batch and positions, (D,), in ``means[(index, head)]``."""

    def keep(module, args):
        z = args[0].unflatten(-1, (layer.num_heads, layer.head_dim))  # (B, T, H, D)
        for head in heads:
            means[(index, head)] = z[:, :, head].mean(dim=(0, 1))  # (D,)

    return layer.out_proj, "input", keep


def replacer(index: int, layer: LayerParts, heads: list[int], means: dict | None) -> Hook:
    """A pre-hook on the output projection replacing each chosen head's slice with zeros
    (``means`` None) or with its recorded mean."""

    def replace(module, args):
        z = args[0].unflatten(-1, (layer.num_heads, layer.head_dim)).clone()  # (B, T, H, D)
        for head in heads:
            z[:, :, head] = 0.0 if means is None else means[(index, head)]  # (B, T, D)
        return (z.flatten(-2), *args[1:])  # (B, T, H·D)

    return layer.out_proj, "input", replace


def ablate_heads(
    model: nn.Module,
    tokens: Tensor,
    targets: Tensor,
    heads: Iterable[tuple[int, int]],
    mode: str = "zero",
) -> AblationResult:
    """Loss and accuracy of ``model`` on (tokens, targets) with and without ``heads``.

    tokens (B, T) and targets (B, T) token ids (``IGNORE_INDEX`` where not scored);
    ``heads`` an iterable of (layer, head); ``mode`` ``"zero"`` or ``"mean"`` (see the
    module docstring). Both passes run on the contract's default path, in eval mode and
    without gradients; modes are restored after.
    """
    parts = model_parts(model)
    if mode not in MODES:
        raise ValueError(f"mode: expected 'zero' or 'mean', got {mode!r}")
    chosen = check_heads(heads, parts.layers)
    model.check_tokens(tokens)
    check_targets(targets, tokens, model.config.vocab_size)
    means: dict | None = {} if mode == "mean" else None
    recorders = [mean_recorder(i, parts.layers[i], hs, means) for i, hs in chosen.items()]
    with evaluating(model):
        with hooked(recorders if means is not None else []):
            before = model(tokens)  # (B, T, V)
        with hooked([replacer(i, parts.layers[i], hs, means) for i, hs in chosen.items()]):
            after = model(tokens)  # (B, T, V)
    loss_before, accuracy_before = loss_and_accuracy(before, targets)
    loss_after, accuracy_after = loss_and_accuracy(after, targets)
    return AblationResult(loss_before, loss_after, accuracy_before, accuracy_after, before, after)
