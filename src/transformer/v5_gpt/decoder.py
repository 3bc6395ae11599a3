"""What every decoder-only language model here shares, whatever its blocks: the forward
passes, generation and the parameter count. v5's ``GPT`` and v7's ``ModernGPT`` are both
a ``DecoderLM``; each defines only ``check_input`` and ``hidden_states``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from transformer._checks import check_token_ids
from transformer.v5_gpt.sampling import check_sampling, generate_tokens


class DecoderLM(nn.Module):
    """Token ids (B, T) -> logits (B, T, vocab_size) through ``hidden_states`` and ``lm_head``.

    Subclasses set ``config`` (with ``vocab_size`` and ``n_positions``) and ``lm_head``, and
    define ``check_input(idx, name)`` and ``hidden_states(idx, maps=None) -> (B, T, E)``.
    """

    config: object
    lm_head: nn.Linear

    def check_input(self, idx: Tensor, name: str = "idx") -> None:
        raise NotImplementedError

    def hidden_states(self, idx: Tensor, maps: list[Tensor] | None = None) -> Tensor:
        raise NotImplementedError

    def forward(self, idx: Tensor) -> Tensor:
        """idx (B, T) long -> logits (B, T, vocab_size)."""
        self.check_input(idx)
        return self.lm_head(self.hidden_states(idx))  # (B, T, V)

    def forward_with_attention(self, idx: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Like ``forward`` (same numbers, slower), and each layer's weights (B, H, T, T)."""
        self.check_input(idx)
        maps: list[Tensor] = []
        logits = self.lm_head(self.hidden_states(idx, maps))  # (B, T, V)
        return logits, maps

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """idx (B, T) -> (B, T + max_new_tokens): append one token at a time.

        Each step reads at most the last ``n_positions`` tokens. ``temperature=0`` is greedy
        (argmax); otherwise tokens are sampled (see ``sampling.next_token``). Dropout applies
        in training mode, so call ``.eval()`` first. No key/value cache: each step recomputes
        the whole context, which is simple and, for short texts, fast enough.
        """
        check_token_ids("idx", idx, self.config.vocab_size)
        check_sampling(max_new_tokens, temperature, top_k)

        def last_logits(context: Tensor) -> Tensor:  # (B, <= n_positions) -> (B, V)
            return self.lm_head(self.hidden_states(context)[:, -1])

        window = self.config.n_positions
        return generate_tokens(
            last_logits, idx, window, max_new_tokens, temperature, top_k, generator
        )

    def num_parameters(self) -> int:
        """How many numbers the model learns; a tied head is counted once."""
        return sum(p.numel() for p in self.parameters())
