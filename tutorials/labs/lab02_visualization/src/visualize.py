"""Lab 02: read a stage's attention weights and draw them. Fill in both functions.

Check your work with: poetry run pytest tests/ (in tutorials/labs/lab02_visualization)
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt  # noqa: F401
import seaborn as sns  # noqa: F401
from matplotlib.figure import Figure
from torch import Tensor

from transformer import SequenceModel


def attention_maps(model: SequenceModel, tokens: Tensor, index: int = 0) -> list[Tensor]:
    """The attention weights of sequence ``index`` of the batch, one tensor per layer.

    model: built with ``transformer.get_stage(v).build_model(ModelConfig(...))``.
    tokens: token ids (batch, seq). ``model(tokens, return_attention=True)`` returns
    ``(logits, maps)``, where maps is a list with one (batch, heads, seq, seq) tensor per layer.
    Returns a list with one (heads, seq, seq) tensor per layer, in layer order.
    """
    raise NotImplementedError("lab02: implement attention_maps() in visualize.py")


def plot_attention(weights: Tensor, tokens: Sequence[object], title: str) -> Figure:
    """One seaborn heatmap of weights (seq, seq) and return its Figure.

    Rows are queries and columns keys (row i = where query i looked); the tick labels on
    both axes are the tokens, in order; the x axis is titled "key" and the y axis "query";
    the colour scale is fixed to [0, 1]; ``title`` is the plot's title.
    """
    raise NotImplementedError("lab02: implement plot_attention() in visualize.py")
