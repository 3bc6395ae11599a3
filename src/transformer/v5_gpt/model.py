"""v5's sequence model: the stage contract's view of a GPT, with readable attention."""

from __future__ import annotations

from torch import Tensor

from transformer.contract import ModelConfig, SequenceModel
from transformer.v5_gpt.config import GPTConfig
from transformer.v5_gpt.gpt import GPT


def gpt_config(config: ModelConfig) -> GPTConfig:
    """ModelConfig -> GPTConfig: ``dropout`` is used for all three of GPT-2's dropouts."""
    if config.causal is not True:
        raise ValueError(
            f"causal: expected True for v5 (a GPT is decoder-only: each position sees only "
            f"itself and earlier ones), got {config.causal!r}"
        )
    return GPTConfig(
        vocab_size=config.vocab_size,
        n_positions=config.max_len,
        n_embd=config.d_model,
        n_layer=config.num_layers,
        n_head=config.num_heads,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        resid_pdrop=config.dropout,
    )


class GPTSequenceModel(SequenceModel):
    """A ``GPT`` behind the stage contract. Every call takes the explicit attention path, so
    ``attention_maps`` is filled; that is slower than ``GPT.forward``, fine for small experiments.
    """

    def __init__(self, config: ModelConfig) -> None:
        gpt = GPT(gpt_config(config))
        super().__init__(config)
        self.gpt = gpt

    def check_tokens(self, tokens: Tensor) -> None:
        self.gpt.check_input(tokens, name="tokens")

    def logits(self, tokens: Tensor) -> Tensor:
        logits, maps = self.gpt.forward_with_attention(tokens)  # (B, T, V), L x (B, H, T, T)
        self.attention_maps = [weights.detach() for weights in maps]
        return logits


def build_sequence_model(config: ModelConfig) -> SequenceModel:
    """The stage contract's entry point for v5."""
    return GPTSequenceModel(config)
