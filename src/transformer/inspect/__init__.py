"""Looking inside a trained (or hand-built) model of any next-token stage, through the contract.

Analysis tooling, not a stage: it may import the stages and the contract, and no stage
imports it (``tests/test_layering.py``). It works on what ``get_stage(v).build_model(...)``
returns for v1, v2, v3, v4, v5 and v7.

* :func:`run_with_cache` runs one forward pass and keeps, per layer, the residual stream,
  the attention patterns and each head's output (:class:`ActivationCache`).
* :func:`ablate_heads` zeroes (or mean-replaces) heads and reports the loss and accuracy
  before and after (:class:`AblationResult`).
* Head scores, (L, H) tensors from attention patterns: :func:`previous_token_score`,
  :func:`k_back_score`, :func:`duplicate_token_score`, :func:`induction_score`, with
  :func:`repeated_random_tokens` for the induction test.
* :func:`direct_logit_attribution` (v5, v7): each head's direct contribution to a target
  token's logit, the final norm linearised (:class:`LogitAttribution`).
"""

from transformer.inspect.ablation import MODES, AblationResult, ablate_heads
from transformer.inspect.attribution import LogitAttribution, direct_logit_attribution
from transformer.inspect.cache import ActivationCache, run_with_cache
from transformer.inspect.parts import model_parts
from transformer.inspect.scores import (
    duplicate_token_score,
    induction_score,
    k_back_score,
    previous_token_score,
    repeated_random_tokens,
)

__all__ = [
    "MODES",
    "AblationResult",
    "ActivationCache",
    "LogitAttribution",
    "ablate_heads",
    "direct_logit_attribution",
    "duplicate_token_score",
    "induction_score",
    "k_back_score",
    "model_parts",
    "previous_token_score",
    "repeated_random_tokens",
    "run_with_cache",
]
