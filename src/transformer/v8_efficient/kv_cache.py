"""The key/value cache: what generation keeps from one step to the next.

At step t a decoder needs, in every layer, the keys and values of tokens 0..t. Those of
tokens 0..t-1 were computed at earlier steps and do not change (each token sees only
itself and earlier tokens), so they are kept here and only the new token is projected.
Queries are not kept: a past query is never used again, only the newest token asks.

Per layer the cache holds keys and values (B, H_kv, S, D), with H_kv the key/value heads
(fewer than the query heads under grouped-query attention, so the cache is smaller). It
also counts the positions seen per row, and, once a row had padding, which keys are real.

``window`` (None: unlimited) keeps only the last ``window`` keys per layer: a rolling
window, as RoPE models use past their training context. Each new token then attends to
itself and the ``window - 1`` tokens before it (sliding-window attention).
"""

from __future__ import annotations

import torch
from torch import Tensor

from transformer._checks import check_positive_int


class KVCache:
    """Keys and values per layer, (B, H_kv, S, D) each, grown by ``update`` step by step."""

    def __init__(self, num_layers: int, window: int | None = None) -> None:
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.window = None if window is None else check_positive_int("window", window)
        self.keys: list[Tensor | None] = [None] * num_layers
        self.values: list[Tensor | None] = [None] * num_layers
        self.key_mask: Tensor | None = None  # (B, S) True = a real token, once padding came
        self.next_position: Tensor | int = 0  # (B,) per row once padding came, else an int

    @property
    def length(self) -> int:
        """How many keys each layer holds now (at most ``window``)."""
        keys = self.keys[0]
        return 0 if keys is None else keys.shape[2]

    def update(self, layer: int, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new key (B, H_kv, L, D) and value to ``layer``'s, then return all the
        layer's keys and values (B, H_kv, S, D), the oldest dropped past ``window``."""
        if self.keys[layer] is not None:
            key = torch.cat([self.keys[layer], key], dim=2)  # (B, H_kv, S, D)
            value = torch.cat([self.values[layer], value], dim=2)  # (B, H_kv, S, D)
        if self.window is not None:
            key, value = key[:, :, -self.window :], value[:, :, -self.window :]  # (.., <= W, D)
        self.keys[layer], self.values[layer] = key, value
        return key, value

    def advance(self, real: Tensor | None, steps: int) -> tuple[Tensor, Tensor | None]:
        """Account for ``steps`` new tokens before the layers run: their positions (L,), or
        (B, L) per row once there was padding, and the key mask (B, S) after the step.

        ``real`` (B, L) bool marks the new tokens that are not padding (None: all are).
        A row's position counts its real tokens only; a pad token takes its row's next
        position (its output is never used).
        """
        if real is None and self.key_mask is None:
            start = int(self.next_position)
            self.next_position = start + steps
            return torch.arange(start, start + steps), None  # (L,)
        batch = real.shape[0] if real is not None else self.key_mask.shape[0]
        if real is None:
            real = torch.ones(batch, steps, dtype=torch.bool, device=self.key_mask.device)
        start = self.next_position
        if isinstance(start, int):
            start = torch.full((batch,), start, dtype=torch.long, device=real.device)  # (B,)
        counted = real.long().cumsum(dim=1)  # (B, L) real tokens up to each
        positions = start[:, None] + (counted - real.long()).clamp(min=0)  # (B, L)
        self.next_position = start + counted[:, -1]  # (B,)
        past = self.key_mask
        if past is None:
            past = torch.ones(batch, self.length, dtype=torch.bool, device=real.device)
        key_mask = torch.cat([past, real], dim=1)  # (B, S)
        if self.window is not None:
            key_mask = key_mask[:, -self.window :]  # (B, <= W)
        self.key_mask = key_mask
        return positions, key_mask

    def nbytes(self) -> int:
        """Bytes held by the cached keys and values, all layers."""
        tensors = [t for t in self.keys + self.values if t is not None]
        return sum(t.numel() * t.element_size() for t in tensors)
