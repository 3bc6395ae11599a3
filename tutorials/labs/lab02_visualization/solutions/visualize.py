"""Lab 02, solved: read a stage's attention weights and draw one map."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import seaborn as sns
import torch
from matplotlib.figure import Figure
from torch import Tensor

from transformer import SequenceModel


def attention_maps(model: SequenceModel, tokens: Tensor, index: int = 0) -> list[Tensor]:
    """One (heads, seq, seq) tensor per layer: where sequence ``index``'s queries looked."""
    with torch.no_grad():
        _, maps = model(tokens, return_attention=True)  # per layer (batch, heads, seq, seq)
    return [layer[index] for layer in maps]


def plot_attention(weights: Tensor, tokens: Sequence[object], title: str) -> Figure:
    """A heatmap of weights (seq, seq): row i is where query i looked."""
    figure, axes = plt.subplots(figsize=(4, 3.5))
    labels = [str(t) for t in tokens]
    sns.heatmap(weights.detach().cpu().numpy(), ax=axes, vmin=0.0, vmax=1.0,
                xticklabels=labels, yticklabels=labels)  # fmt: skip
    axes.set_xlabel("key")
    axes.set_ylabel("query")
    axes.set_title(title)
    return figure
