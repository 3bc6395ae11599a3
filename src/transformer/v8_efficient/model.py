"""v8's decoder: v7's ``ModernGPT`` that generates with a key/value cache and can attend in
tiles. The weights, the names and (to 1e-5) the logits are v7's.

v5 is served too: v7 with every switch at GPT-2's setting is v5's GPT, so
``EfficientGPT.from_model(gpt)`` takes a v5 ``GPT`` or a v7 ``ModernGPT`` with its weights.

One path runs every block, with or without a cache (``decode``):

    x = embed(idx) (+ learned positions at each token's position)
    per block:  q, k, v = project(norm1(x), positions)       v7's projection, RoPE inside
                k, v = cache.update(layer, k, v)              all keys so far, if caching
                x = x + dropout(out_proj(attend(q, k, v)))   fused SDPA or tiled
                x = x + feed_forward(x)                       v7's MLP sublayer

The queries are the last L of the S keys, so query i sees keys up to S - L + i (the causal
mask aligned to the bottom right); with padding, pad keys are blocked too (a pad query
sees itself, so no row is empty).

**Past the context window.** ``generate`` reads at most ``n_positions`` tokens, as v5's:

* learned positions (v5, v7 with ``positions="learned"``): when the window slides, every
  kept token's position changes, so no cached key is still right. From then on each step
  recomputes the window without a cache: the tokens are exactly ``use_cache=False``'s;
* RoPE: a key's rotation depends only on its own position, so the cache rolls: the oldest
  key leaves and each new token attends to itself and the ``n_positions - 1`` before it
  (sliding-window attention, as in Mistral). Up to ``n_positions`` tokens this equals
  ``use_cache=False``; past it the two differ, since ``use_cache=False`` re-reads the
  window from its first token, and equals a full forward pass with a banded causal mask.
"""

from __future__ import annotations

import torch
from torch import Tensor

from transformer._checks import check_positive_int, check_token_ids, shape_str
from transformer.v1_basic_attention import blocked_to_bias, merge_heads
from transformer.v5_gpt import GPT
from transformer.v5_gpt.sampling import check_sampling, next_token
from transformer.v7_modern import ModernConfig, ModernGPT
from transformer.v7_modern.attention import GroupedQueryAttention, repeat_kv
from transformer.v7_modern.v5 import from_gpt
from transformer.v8_efficient.kv_cache import KVCache
from transformer.v8_efficient.tiled_attention import tiled_attention

BACKENDS = ("sdpa", "tiled")  # fused F.scaled_dot_product_attention, or tiled_attention


def attend_mask(key_mask: Tensor | None, queries: int, keys: int, device) -> Tensor | None:
    """Which of S keys each of the last L queries sees: bool (B or 1, 1, L, S), True = attend.

    None when plain causal attention over L == S, or one query over unpadded keys, says it.
    """
    if key_mask is None and (queries == keys or queries == 1):
        return None
    query = torch.arange(keys - queries, keys, device=device)  # (L,) each query's own key
    key = torch.arange(keys, device=device)  # (S,)
    causal = key[None, :] <= query[:, None]  # (L, S)
    if key_mask is None:
        return causal[None, None]  # (1, 1, L, S)
    itself = key[None, :] == query[:, None]  # (L, S): a pad query still sees itself
    return (causal & (key_mask[:, None, :] | itself))[:, None]  # (B, 1, L, S)


class EfficientGPT(ModernGPT):
    """``ModernGPT`` + a key/value cache in ``generate`` + ``attention="tiled"``.

    ``attention``: ``"sdpa"`` (v7's fused kernel) or ``"tiled"`` (``tiled_attention`` in
    blocks of ``block_size`` keys: memory linear in T; it has no dropout on the weights,
    so it trains only with ``attn_pdrop=0``).
    ``forward_with_attention`` is v7's explicit path, whichever backend is chosen.
    """

    def __init__(
        self, config: ModernConfig, *, attention: str = "sdpa", block_size: int = 128
    ) -> None:
        super().__init__(config)
        if attention not in BACKENDS:
            raise ValueError(f"attention: expected one of {', '.join(BACKENDS)}, got {attention!r}")
        self.attention = attention
        self.block_size = check_positive_int("block_size", block_size)

    @classmethod
    def from_model(cls, model: GPT | ModernGPT, **options) -> EfficientGPT:
        """A v5 ``GPT`` or v7 ``ModernGPT`` as an ``EfficientGPT`` with its weights (copied),
        device and dtype; ``options`` are ``attention`` and ``block_size``."""
        if isinstance(model, GPT):
            model = from_gpt(model)
        if not isinstance(model, ModernGPT):
            raise TypeError(
                f"model: expected a v5 GPT or a v7 ModernGPT, got {type(model).__name__}"
            )
        efficient = cls(model.config, **options)
        efficient.load_state_dict(model.state_dict())
        weight = model.wte.weight
        return efficient.to(weight.device, weight.dtype).train(model.training)

    def new_cache(self) -> KVCache:
        """An empty cache for ``decode``; with RoPE it rolls at ``n_positions`` (see the
        module docstring), with learned positions it stops there."""
        window = self.config.n_positions if self.wpe is None else None
        return KVCache(self.config.n_layer, window)

    def hidden_states(self, idx: Tensor, maps: list[Tensor] | None = None) -> Tensor:
        """idx (B, T) -> (B, T, E); with ``maps``, v7's explicit path (weights appended)."""
        if maps is not None:
            return super().hidden_states(idx, maps)
        return self.decode_hidden(idx)

    def decode(
        self, idx: Tensor, cache: KVCache | None = None, attention_mask: Tensor | None = None
    ) -> Tensor:
        """The logits (B, L, V) of L new tokens idx (B, L) after those in ``cache``.

        ``cache`` (from ``new_cache``) is updated with the new keys and values; None runs
        without one. ``attention_mask`` (B, L), 1 = a token, 0 = padding (left padding in a
        batch), covers the new tokens; the cache remembers the earlier ones.
        """
        check_token_ids("idx", idx, self.config.vocab_size)
        if cache is not None:
            self.check_cache(cache, idx)
        real = self.check_attention_mask(attention_mask, idx)
        return self.lm_head(self.decode_hidden(idx, cache, real))  # (B, L, V)

    def check_cache(self, cache: KVCache, idx: Tensor) -> None:
        """Raise unless ``cache`` is a KVCache for this model's layers and idx's batch."""
        if not isinstance(cache, KVCache):
            raise TypeError(f"cache: expected a KVCache (model.new_cache()), got {cache!r}")
        if cache.num_layers != self.config.n_layer:
            raise ValueError(
                f"cache: expected one for n_layer={self.config.n_layer} layers, got "
                f"{cache.num_layers}"
            )
        if cache.length and cache.keys[0].shape[0] != idx.shape[0]:
            raise ValueError(
                f"idx: expected batch {cache.keys[0].shape[0]} like the cache, got "
                f"{idx.shape[0]} in shape {shape_str(idx.shape)}"
            )

    def check_attention_mask(self, attention_mask: Tensor | None, idx: Tensor) -> Tensor | None:
        """attention_mask (B, L) of 0/1 (or bool) like idx -> bool, True = a real token."""
        if attention_mask is None:
            return None
        wanted = f"a tensor of idx's shape {shape_str(idx.shape)} (1 = token, 0 = padding)"
        if not isinstance(attention_mask, Tensor):
            raise TypeError(
                f"attention_mask: expected {wanted}, got {type(attention_mask).__name__}"
            )
        if attention_mask.shape != idx.shape:
            raise ValueError(
                f"attention_mask: expected {wanted}, got shape {shape_str(attention_mask.shape)}"
            )
        if attention_mask.dtype != torch.bool:
            bad = attention_mask[(attention_mask != 0) & (attention_mask != 1)]
            if bad.numel():
                raise ValueError(
                    f"attention_mask: expected 0/1 values (1 = token, 0 = padding), got the "
                    f"value {bad.flatten()[0].item()}"
                )
        return attention_mask.to(device=idx.device, dtype=torch.bool)

    def decode_hidden(
        self, idx: Tensor, cache: KVCache | None = None, real: Tensor | None = None
    ) -> Tensor:
        """idx (B, L) -> final norm output (B, L, E), unchecked; see ``decode``."""
        steps = idx.shape[1]
        state = cache if cache is not None else KVCache(self.config.n_layer)
        before = state.length
        limit = self.config.n_positions if self.wpe is not None else None  # learned: a limit
        if cache is not None and cache.window is not None and steps > 1:
            limit = cache.window  # a rolling cache rolls one token at a time
        if limit is not None and before + steps > limit:
            why = "learned positions stop at n_positions" if self.wpe is not None else (
                "a rolling cache takes one token at a time once full"
            )  # fmt: skip
            raise ValueError(
                f"idx: expected at most {limit - before} tokens in this step (the cache holds "
                f"{before} of n_positions={self.config.n_positions}; {why}), got {steps}"
            )
        positions, key_mask = state.advance(real, steps)  # (L,) or (B, L); (B, S) or None
        positions = positions.to(idx.device)
        x = self.wte(idx)  # (B, L, E)
        if self.wpe is not None:
            x = x + self.wpe.table()[positions].to(x.dtype)  # (B, L, E)
        x = self.drop(x)  # (B, L, E)
        for layer, block in enumerate(self.h):
            q, k, v = block.self_attn.project(block.norm1(x), positions)  # (B, H|H_kv, L, D)
            if cache is not None:
                k, v = cache.update(layer, k, v)  # (B, H_kv, S, D) all keys so far
            mask = attend_mask(key_mask, steps, k.shape[2], x.device)  # (B|1, 1, L, S) or None
            attended = self.attend_heads(block.self_attn, q, k, v, mask)  # (B, L, E)
            x = x + block.dropout(attended)  # (B, L, E)
            x = x + block.feed_forward(x)  # (B, L, E)
        return self.ln_f(x)  # (B, L, E)

    def attend_heads(
        self, attn: GroupedQueryAttention, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None
    ) -> Tensor:
        """q (B, H, L, D), k and v (B, H_kv, S, D) -> out_proj(merged heads) (B, L, E).

        ``mask`` None means causal over L == S keys, or one query seeing every key. The
        fused backend is v7's ``attend_heads``; the tiled one swaps in ``tiled_attention``."""
        causal = mask is None and q.shape[2] == k.shape[2] and q.shape[2] > 1
        if self.attention == "sdpa":
            bias = None if mask is None else blocked_to_bias(~mask, q.dtype)  # (B|1, 1, L, S)
            return attn.attend_heads(q, k, v, bias, causal=causal, need_weights=False)[0]
        if self.training and attn.dropout > 0:
            raise ValueError(
                "attention: 'tiled' has no dropout on the attention weights; expected "
                f"attn_pdrop=0 or eval mode, got attn_pdrop={attn.dropout} in training"
            )
        groups = attn.num_heads // attn.num_kv_heads
        k, v = repeat_kv(k, groups), repeat_kv(v, groups)  # (B, H, S, D) each
        out = tiled_attention(
            q, k, v, mask, causal=causal, block_size=self.block_size
        )  # (B, H, L, D)
        return attn.out_proj(merge_heads(out))  # (B, L, E)

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        *,
        use_cache: bool = True,
        attention_mask: Tensor | None = None,
    ) -> Tensor:
        """idx (B, T) -> (B, T + max_new_tokens), as v5's ``generate``, with a cache.

        ``use_cache=True`` projects only the new token at each step (see the module
        docstring for what happens past ``n_positions``). ``attention_mask`` (B, T), 1 =
        token, 0 = padding, lets rows of different lengths share a batch: pad on the left.
        """
        check_token_ids("idx", idx, self.config.vocab_size)
        check_sampling(max_new_tokens, temperature, top_k)
        if not isinstance(use_cache, bool):
            raise TypeError(f"use_cache: expected True or False, got {use_cache!r}")
        real = self.check_attention_mask(attention_mask, idx)
        if real is not None and not bool(real.any(dim=1).all()):
            empty = int((~real.any(dim=1)).nonzero()[0])
            raise ValueError(
                f"attention_mask: expected at least one token (a 1) in every row, got row "
                f"{empty} all padding"
            )
        if not use_cache and real is None:
            return super().generate(idx, max_new_tokens, temperature, top_k, generator)
        window = self.config.n_positions
        cache = self.new_cache() if use_cache else None
        logits = self.last_logits(idx[:, -window:], cache, real, window)  # (B, V)
        for step in range(max_new_tokens):
            token = next_token(logits, temperature, top_k, generator)  # (B, 1)
            idx = torch.cat([idx, token.to(idx.dtype)], dim=1)  # (B, T + 1)
            if real is not None:
                real = torch.cat([real, torch.ones_like(token, dtype=torch.bool)], dim=1)
            if step + 1 == max_new_tokens:
                break
            recompute = cache is None or (self.wpe is not None and idx.shape[1] > window)
            if recompute:  # no cache, or learned positions past the window
                logits = self.last_logits(idx[:, -window:], None, real, window)
            else:
                logits = self.last_logits(token, cache, None, window)
        return idx

    def last_logits(
        self, idx: Tensor, cache: KVCache | None, real: Tensor | None, window: int
    ) -> Tensor:
        """The next token's logits (B, V) after idx (B, L); ``real`` may cover more columns
        than idx (the whole text so far), and its last L are taken."""
        if real is not None:
            real = real[:, -idx.shape[1] :][:, -window:]  # (B, L)
        return self.lm_head(self.decode_hidden(idx, cache, real)[:, -1])  # (B, V)
