"""Direct logit attribution: how much each head writes, straight into a target token's logit.

In v5 (GPT) and v7 (ModernGPT) the last residual stream x (B, T, E) is a sum of parts: the
embedding (tokens, plus learned positions), and for each layer the heads' outputs (each in
d_model space, through its columns of ``out_proj``), ``out_proj``'s bias and the MLP's output.
The logit of token y is ``lm_head(ln_f(x))[y]``. The final norm is not linear, so it is
*linearised* as TransformerLens does: its denominator is frozen at the value the actual x
gives,

    LayerNorm: ln_f(c) ≈ (c - mean(c)) · s · weight,  s = 1 / √(var(x) + eps)
    RMSNorm:   ln_f(c) ≈ c · s · weight,              s = 1 / √(mean(x²) + eps)

and the part's direct attribution is ``W_U[y] · ln_f(c)``. With s frozen the map is linear,
so the parts' attributions plus the constant (the norm's bias and the head's bias read at
y) add up to the actual logit. "Direct" means only this path: what a head's output does
through later layers is not counted here (ablation measures that).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from transformer._checks import check_shape, check_token_ids
from transformer.inspect.cache import ActivationCache, run_with_cache
from transformer.inspect.parts import ModelParts, model_parts
from transformer.v7_modern.norm import RMSNorm


@dataclass(frozen=True)
class LogitAttribution:
    """Each part's direct contribution to the logit of ``targets[b, t]`` at position t.

    ``heads`` (L, H, B, T); ``attention_biases`` and ``mlps`` (L, B, T); ``embeddings``,
    ``constant`` (final-norm bias and head bias) and ``target_logits`` (the model's actual
    logits of the targets) (B, T). ``heads.mean(dim=(2, 3))`` is an (L, H) summary.
    """

    heads: Tensor
    attention_biases: Tensor
    mlps: Tensor
    embeddings: Tensor
    constant: Tensor
    target_logits: Tensor

    def total(self) -> Tensor:
        """The sum over every part (B, T): the target logit, up to rounding."""
        layers = self.heads.sum(dim=(0, 1)) + self.attention_biases.sum(0) + self.mlps.sum(0)
        return self.embeddings + layers + self.constant  # (B, T)


def check_decoder(model: nn.Module) -> ModelParts:
    """The parts of a v5 or v7 model; any other model is an error."""
    parts = model_parts(model)
    if not parts.decoder:
        raise TypeError(
            "model: expected a v5 or v7 model (direct logit attribution needs pre-norm blocks "
            f"adding to a residual stream, then a final norm), got {type(model).__name__}"
        )
    return parts


def frozen_scale(norm: nn.Module, final: Tensor) -> tuple[Tensor, bool]:
    """The final norm's denominator frozen at the last residual stream final (B, T, E):
    s (B, T, 1), and whether the norm subtracts the mean (LayerNorm) or not (RMSNorm)."""
    if isinstance(norm, nn.LayerNorm):
        variance = final.var(dim=-1, unbiased=False, keepdim=True)  # (B, T, 1)
        return torch.rsqrt(variance + norm.eps), True
    if isinstance(norm, RMSNorm):
        mean_square = final.pow(2).mean(dim=-1, keepdim=True)  # (B, T, 1)
        return torch.rsqrt(mean_square + norm.eps), False
    raise TypeError(f"final norm: expected nn.LayerNorm or RMSNorm, got {type(norm).__name__}")


def logit_directions(parts: ModelParts, final: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """The vector d (B, T, E) with attribution(c) = c · d for any part c, and the constant
    (B, T): the norm's bias and the head's bias, read at each target."""
    norm, unembed = parts.final_norm, parts.unembed
    scale, centred = frozen_scale(norm, final)  # (B, T, 1)
    reading = unembed.weight[targets]  # (B, T, E) W_U[y]
    gain = reading if norm.weight is None else reading * norm.weight  # (B, T, E)
    direction = gain * scale  # (B, T, E)
    if centred:  # (c - mean(c)) · d = c · (d - mean(d))
        direction = direction - direction.mean(dim=-1, keepdim=True)  # (B, T, E)
    constant = torch.zeros(targets.shape, dtype=final.dtype, device=final.device)  # (B, T)
    if getattr(norm, "bias", None) is not None:
        constant = constant + reading @ norm.bias  # (B, T)
    if unembed.bias is not None:
        constant = constant + unembed.bias[targets]  # (B, T)
    return direction, constant


def attention_bias_terms(parts: ModelParts, direction: Tensor) -> Tensor:
    """Each layer's ``out_proj`` bias read along direction (B, T, E) -> (L, B, T)."""
    terms = []
    for layer in parts.layers:
        bias = layer.out_proj.bias
        terms.append(direction.new_zeros(direction.shape[:2]) if bias is None else direction @ bias)
    return torch.stack(terms)  # (L, B, T)


def direct_logit_attribution(model: nn.Module, tokens: Tensor, targets: Tensor) -> LogitAttribution:
    """Each head's (and every other part's) direct contribution to the logit of ``targets``.

    model: a v5 or v7 model from the contract; tokens and targets (B, T) token ids, where
    ``targets[b, t]`` is the token whose logit at position t is attributed (the next token,
    say). Runs in eval mode without gradients (see :func:`run_with_cache`).
    """
    parts = check_decoder(model)
    model.check_tokens(tokens)
    check_token_ids("targets", targets, model.config.vocab_size)
    check_shape("targets", targets, batch=tokens.shape[0], seq=tokens.shape[1])
    return attribute(parts, run_with_cache(model, tokens), targets)


@torch.no_grad()
def attribute(parts: ModelParts, cache: ActivationCache, targets: Tensor) -> LogitAttribution:
    """The attribution of every part, from one pass's cache and the targets (B, T)."""
    direction, constant = logit_directions(parts, cache.residual[-1], targets)  # (B, T, E)
    heads = [(out * direction[:, None]).sum(-1) for out in cache.head_outputs]  # L x (B, H, T)
    mlps = [(out * direction).sum(-1) for out in cache.mlp_outputs]  # L x (B, T)
    return LogitAttribution(
        heads=torch.stack(heads).permute(0, 2, 1, 3),  # (L, H, B, T)
        attention_biases=attention_bias_terms(parts, direction),  # (L, B, T)
        mlps=torch.stack(mlps),  # (L, B, T)
        embeddings=(cache.residual[0] * direction).sum(-1),  # (B, T)
        constant=constant,  # (B, T)
        target_logits=cache.logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1),  # (B, T)
    )
