"""Lab 09: a GPT of your own: the causal block, the model with its tied head, and generate.

Fill in CausalBlock, GPT and generate.
Check your work with: poetry run pytest tests/ (in tutorials/labs/lab09_gpt)
"""

from __future__ import annotations

import torch  # noqa: F401
import torch.nn.functional as F  # noqa: F401  (F.gelu(x, approximate="tanh"))
from torch import Tensor, nn

from transformer.v2_multihead import MultiHeadAttention  # noqa: F401  (the attention sublayer)


class CausalBlock(nn.Module):
    """GPT-2's block on (batch, seq, d_model): pre-norm, causal self-attention, then an MLP.

    Parameter names (the check loads GPT-2's weights by them):
      norm1, norm2: nn.LayerNorm(d_model)
      self_attn: MultiHeadAttention(d_model, n_head, batch_first=True)
      linear1: nn.Linear(d_model, 4 * d_model); linear2: nn.Linear(4 * d_model, d_model)
    forward: x = x + attention(norm1(x)), with a causal mask (True above the diagonal);
             x = x + linear2(gelu_tanh(linear1(norm2(x)))).
    """

    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        raise NotImplementedError("lab09: implement CausalBlock.__init__()")

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError("lab09: implement CausalBlock.forward()")


class GPT(nn.Module):
    """Token ids (batch, seq) -> logits (batch, seq, vocab_size).

    Parts: wte = nn.Embedding(vocab_size, d_model), wpe = nn.Embedding(n_positions, d_model),
    h = nn.ModuleList of n_layer CausalBlocks, ln_f = nn.LayerNorm(d_model), and
    lm_head = nn.Linear(d_model, vocab_size, bias=False) whose weight IS wte's (tied).
    forward: x = wte(tokens) + wpe(0 .. T-1); every block; logits = lm_head(ln_f(x)).
    """

    def __init__(
        self, vocab_size: int, n_positions: int, d_model: int, n_layer: int, n_head: int
    ) -> None:
        super().__init__()
        raise NotImplementedError("lab09: implement GPT.__init__()")

    def forward(self, tokens: Tensor) -> Tensor:
        raise NotImplementedError("lab09: implement GPT.forward()")


def generate(
    model: nn.Module,
    tokens: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """tokens (batch, T) -> (batch, T + max_new_tokens), one new token per step.

    Each step: run the model on the last model.config.n_positions tokens, take the logits
    of the last position; temperature 0 takes the argmax, otherwise divide the logits by
    the temperature, softmax, and draw with torch.multinomial(probs, 1, generator=generator).
    """
    raise NotImplementedError("lab09: implement generate()")
