"""GPT: a decoder-only language model, numerically Hugging Face's ``GPT2LMHeadModel``."""

from __future__ import annotations

import math

from torch import Tensor, nn

from transformer._checks import check_seq_len, check_token_ids
from transformer.v3_positional import LearnedPositionalEmbedding
from transformer.v5_gpt.block import gpt_block
from transformer.v5_gpt.config import GPTConfig
from transformer.v5_gpt.decoder import DecoderLM

INIT_STD = 0.02  # GPT-2's initializer_range


class GPT(DecoderLM):
    """Token + position embeddings -> ``n_layer`` causal pre-norm blocks -> LayerNorm -> head.

    ``forward(idx)``: token ids (batch, seq_len <= n_positions) -> logits (batch, seq_len,
    vocab_size), where position t's logits predict token t+1 from tokens 0..t only. The head
    is tied to the token embedding: ``lm_head.weight`` *is* ``wte.weight``. Module names
    follow GPT-2 (``wte``, ``wpe``, ``h``, ``ln_f``, ``lm_head``); ``transformer.v5_gpt.hf``
    converts weights to and from Hugging Face.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config: expected a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = LearnedPositionalEmbedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList(gpt_block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # NEW: tied, one matrix reads and writes tokens
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's initialisation: weights N(0, 0.02²), biases 0, LayerNorms (1, 0); the two
        projections into the residual stream per block (attention's ``out_proj`` and the MLP's
        ``linear2``, GPT-2's ``c_proj``) get std 0.02/√(2·n_layer), so the stream's variance
        does not grow with depth."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding | LearnedPositionalEmbedding):
                nn.init.normal_(module.weight, std=INIT_STD)
            if isinstance(module, nn.Linear | nn.LayerNorm) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
        residual_std = INIT_STD / math.sqrt(2 * self.config.n_layer)
        for block in self.h:
            nn.init.normal_(block.self_attn.in_proj_weight, std=INIT_STD)
            nn.init.zeros_(block.self_attn.in_proj_bias)
            nn.init.normal_(block.self_attn.out_proj.weight, std=residual_std)
            nn.init.normal_(block.linear2.weight, std=residual_std)

    def check_input(self, idx: Tensor, name: str = "idx") -> None:
        """Raise unless ``idx`` is (batch, 1..n_positions) integer ids below ``vocab_size``."""
        check_token_ids(name, idx, self.config.vocab_size)
        hint = "keep the last n_positions tokens (generate does)"
        check_seq_len(name, idx.shape[1], self.config.n_positions, "n_positions", hint)

    def hidden_states(self, idx: Tensor, maps: list[Tensor] | None = None) -> Tensor:
        """idx (B, T) -> final LayerNorm output (B, T, E), unchecked. With a ``maps`` list, the
        explicit attention path runs and each block's weights (B, H, T, T) are appended."""
        x = self.drop(self.wpe(self.wte(idx)))  # (B, T, E)
        for block in self.h:
            if maps is None:
                x = block(x, is_causal=True)  # (B, T, E), fused causal attention
            else:
                x, weights = block.forward_with_attention(x, is_causal=True)  # explicit
                maps.append(weights)  # (B, H, T, T)
        return self.ln_f(x)  # (B, T, E)
