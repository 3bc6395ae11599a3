"""Lab 09, solved: GPT-2's block, the model with its tied head, and the sampling loop."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transformer.v2_multihead import MultiHeadAttention


class CausalBlock(nn.Module):
    """x + attention(norm1(x)) under a causal mask, then x + mlp(norm2(x))."""

    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, n_head, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, 4 * d_model)
        self.linear2 = nn.Linear(4 * d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        seq = x.shape[1]
        future = torch.ones(seq, seq, dtype=torch.bool, device=x.device).triu(1)  # True = blocked
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h, attn_mask=future, need_weights=False)[0]
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x)), approximate="tanh"))


class GPT(nn.Module):
    """Embeddings + positions -> blocks -> final LayerNorm -> the tied head."""

    def __init__(self, vocab_size: int, n_positions: int, d_model: int, n_layer: int,
                 n_head: int) -> None:  # fmt: skip
        super().__init__()
        self.wte = nn.Embedding(vocab_size, d_model)
        self.wpe = nn.Embedding(n_positions, d_model)
        self.h = nn.ModuleList(CausalBlock(d_model, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied: one matrix reads and writes tokens

    def forward(self, tokens: Tensor) -> Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)  # (T,)
        x = self.wte(tokens) + self.wpe(positions)  # (B, T, E)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # (B, T, vocab)


@torch.no_grad()
def generate(model: nn.Module, tokens: Tensor, max_new_tokens: int, temperature: float = 1.0,
             generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
    """Append one token at a time, from the last position's logits."""
    for _ in range(max_new_tokens):
        logits = model(tokens[:, -model.config.n_positions :])[:, -1]  # (B, vocab)
        if temperature == 0:
            chosen = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        else:
            probs = F.softmax(logits / temperature, dim=-1)  # (B, vocab)
            chosen = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        tokens = torch.cat([tokens, chosen], dim=1)  # (B, T + 1)
    return tokens
