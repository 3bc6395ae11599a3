"""v8, efficient: the same numbers with less memory and time.

Two ideas, each exact:

* **a key/value cache** (``KVCache``): generation keeps every layer's keys and values, so
  each new token costs one token's projection and O(T) attention, not a forward pass over
  the whole text. ``EfficientGPT`` is v7's decoder (and so v5's, at GPT-2's settings) whose
  ``generate(..., use_cache=True)`` uses it, also for left-padded batches;
* **tiled attention** (``tiled_attention``): attention never needs the whole (T, T) score
  matrix. It reads the keys in blocks with an online softmax (FlashAttention's algorithm,
  in plain PyTorch), and its backward pass recomputes the blocks, so memory grows linearly
  in T. ``EfficientGPT(config, attention="tiled")`` uses it in every layer.
"""

from transformer.v8_efficient.kv_cache import KVCache
from transformer.v8_efficient.model import BACKENDS, EfficientGPT, attend_mask
from transformer.v8_efficient.tiled_attention import TiledAttention, tiled_attention

__all__ = [
    "BACKENDS",
    "EfficientGPT",
    "KVCache",
    "TiledAttention",
    "attend_mask",
    "tiled_attention",
]
