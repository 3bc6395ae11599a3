"""The size of a GPT: GPT-2's own hyperparameter names, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from transformer._checks import check_divisible, check_positive_int, check_probability


@dataclass(frozen=True)
class GPTConfig:
    """GPT-2's hyperparameters, named as in ``transformers.GPT2Config``.

    ``n_inner`` (the MLP width) defaults to ``4 * n_embd``. The defaults are GPT-2 small's
    (124M parameters with ``vocab_size=50257``). ``to_dict``/``from_dict`` round-trip JSON.
    """

    vocab_size: int
    n_positions: int = 1024  # longest context
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None
    embd_pdrop: float = 0.1  # dropout on token + position embeddings
    attn_pdrop: float = 0.1  # dropout on the attention weights
    resid_pdrop: float = 0.1  # dropout on each sublayer's output, before its residual add
    layer_norm_epsilon: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            check_positive_int(name, getattr(self, name))
        if self.n_inner is not None:
            check_positive_int("n_inner", self.n_inner)
        check_divisible("n_embd", self.n_embd, "n_head", self.n_head)
        for name in ("embd_pdrop", "attn_pdrop", "resid_pdrop"):
            check_probability(name, getattr(self, name))
        eps = self.layer_norm_epsilon
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps > 0:
            raise ValueError(f"layer_norm_epsilon: expected a positive float, got {eps!r}")

    @property
    def inner_dim(self) -> int:
        """The MLP's hidden width: ``n_inner``, or ``4 * n_embd`` when that is None."""
        return 4 * self.n_embd if self.n_inner is None else self.n_inner

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GPTConfig:
        """The inverse of ``to_dict``; an unknown key is an error, not silently dropped."""
        if not isinstance(values, dict):
            raise TypeError(
                f"values: expected a dict of GPTConfig fields, got {type(values).__name__}"
            )
        known = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(
                f"values: expected only GPTConfig fields ({', '.join(known)}), got {unknown}"
            )
        if "vocab_size" not in values:
            raise ValueError(f"values: expected a 'vocab_size' key, got keys {sorted(values)}")
        return cls(**values)
