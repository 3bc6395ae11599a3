"""The modern decoder: v5's GPT with the four switches of ``ModernConfig``."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from transformer._checks import check_seq_len, check_token_ids
from transformer.v3_positional import LearnedPositionalEmbedding
from transformer.v5_gpt.decoder import DecoderLM
from transformer.v5_gpt.gpt import INIT_STD
from transformer.v7_modern.block import ModernBlock
from transformer.v7_modern.config import ModernConfig
from transformer.v7_modern.norm import RMSNorm, make_norm


class ModernGPT(DecoderLM):
    """Token embedding (+ learned positions) -> ``n_layer`` modern blocks -> norm -> head.

    ``forward(idx)``: token ids (B, T) -> logits (B, T, vocab_size), causal. Module names
    are v5's (``wte``, ``wpe``, ``h``, ``ln_f``, ``lm_head``); ``wpe`` is None with RoPE.
    With ``positions="learned"``, T <= n_positions; with RoPE any T runs. ``forward``,
    ``forward_with_attention``, ``generate`` (each step reads the last ``n_positions``
    tokens, the training context, also with RoPE) and ``num_parameters`` are v5's.
    """

    def __init__(self, config: ModernConfig) -> None:
        super().__init__()
        if not isinstance(config, ModernConfig):
            raise TypeError(f"config: expected a ModernConfig, got {type(config).__name__}")
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = None  # NEW in v7: with RoPE, positions live inside attention
        if config.positions == "learned":
            self.wpe = LearnedPositionalEmbedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList(ModernBlock(config) for _ in range(config.n_layer))
        self.ln_f = make_norm(config.norm, config.n_embd, config.layer_norm_epsilon, config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.wte.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """v5's initialisation (N(0, 0.02²), zero biases, unit gains, the two projections
        into the residual stream at 0.02/√(2·n_layer)), for whichever parts are switched on."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding | LearnedPositionalEmbedding):
                nn.init.normal_(module.weight, std=INIT_STD)
            if isinstance(module, nn.Linear | nn.LayerNorm) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm | RMSNorm):
                nn.init.ones_(module.weight)
        residual_std = INIT_STD / math.sqrt(2 * self.config.n_layer)
        for block in self.h:
            nn.init.normal_(block.self_attn.in_proj_weight, std=INIT_STD)
            if block.self_attn.in_proj_bias is not None:
                nn.init.zeros_(block.self_attn.in_proj_bias)
            nn.init.normal_(block.self_attn.out_proj.weight, std=residual_std)
            nn.init.normal_(block.mlp.output.weight, std=residual_std)

    def check_input(self, idx: Tensor, name: str = "idx") -> None:
        """Raise unless ``idx`` is (batch, seq_len) ids below ``vocab_size``; with learned
        positions, also seq_len <= n_positions."""
        check_token_ids(name, idx, self.config.vocab_size)
        if self.wpe is not None:
            hint = (
                "learned positions stop there (RoPE, positions='rope', has no such limit); "
                "keep the last n_positions tokens"
            )
            check_seq_len(name, idx.shape[1], self.config.n_positions, "n_positions", hint)

    def hidden_states(self, idx: Tensor, maps: list[Tensor] | None = None) -> Tensor:
        """idx (B, T) -> final norm output (B, T, E), unchecked; with a ``maps`` list, the
        explicit path runs and each block's weights (B, H, T, T) are appended."""
        x = self.wte(idx)  # (B, T, E)
        if self.wpe is not None:
            x = self.wpe(x)  # (B, T, E), + learned positions
        x = self.drop(x)  # (B, T, E)
        for block in self.h:
            x, weights = block.self_attend(x, causal=True, need_weights=maps is not None)
            if maps is not None:
                maps.append(weights)  # (B, H, T, T)
        return self.ln_f(x)  # (B, T, E)

    def kv_cache_bytes_per_token(self, dtype: torch.dtype = torch.float32) -> int:
        """What a key/value cache would hold per token: 2 (k and v) · layers · kv heads ·
        head_dim · bytes per number."""
        c = self.config
        return 2 * c.n_layer * c.kv_heads * c.head_dim * torch.finfo(dtype).bits // 8
