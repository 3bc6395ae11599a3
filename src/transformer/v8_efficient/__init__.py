"""v8, efficient: the same numbers with less memory and time (work in progress).

The idea: attention never needs the whole (T, T) score matrix at once.
``tiled_attention`` computes it in key blocks with an online softmax (FlashAttention's
algorithm, in plain PyTorch), and its backward pass recomputes the blocks, so memory grows
linearly in T. The key/value cache for generation comes next.
"""

from transformer.v8_efficient.tiled_attention import TiledAttention, tiled_attention

__all__ = ["TiledAttention", "tiled_attention"]
