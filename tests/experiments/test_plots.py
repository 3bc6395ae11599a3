"""The heatmaps can be read: positions on the axes, and no text drawn over other text."""

import pytest
import torch

from transformer.experiments import plots

TOKENS = [0, 7, 5, 2, 3, 2, 3, 6, 5, 3, 1, 8]


def drawn_heatmaps(monkeypatch, heads, title):
    """The figure attention_heatmaps draws for 2 layers of ``heads`` heads, laid out."""
    figures = []
    monkeypatch.setattr(plots, "write_figure", lambda path, fig: figures.append(fig))
    monkeypatch.setattr(plots.plt, "close", lambda fig: None)
    maps = [torch.softmax(torch.randn(heads, 12, 12), -1).tril() for _ in range(2)]
    plots.attention_heatmaps(None, maps, TOKENS, title)
    figure = figures[0]
    figure.canvas.draw()  # lays the figure out, so that every text has its place
    return figure


def test_each_tick_names_its_position_and_its_token(monkeypatch):
    figure = drawn_heatmaps(monkeypatch, 4, "sequential, v3 trained")
    axes = figure.axes[0]
    expected = [f"{i}:{t}" for i, t in enumerate(TOKENS)]
    assert [label.get_text() for label in axes.get_xticklabels()] == expected
    assert [label.get_text() for label in axes.get_yticklabels()] == expected
    assert axes.get_ylabel() == "query (position:token)"
    assert figure.axes[4].get_xlabel() == "key (position:token)"


@pytest.mark.parametrize("heads", [1, 4])
def test_no_title_is_drawn_over_tick_labels_or_another_title(monkeypatch, heads):
    """v1's one head makes a narrow figure: a long title must wrap, and the second row's
    panel titles must clear the first row's tick labels."""
    title = "fibonacci, v1 untrained: attention on a hand-made input, every layer [quick run]"
    figure = drawn_heatmaps(monkeypatch, heads, title)
    renderer = figure.canvas.get_renderer()
    heatmaps = figure.axes[: 2 * heads]  # the last axes is the colour bar
    texts = [figure._suptitle] + [ax.title for ax in heatmaps]
    ticks = [t for ax in heatmaps for t in (*ax.get_xticklabels(), *ax.get_yticklabels())]
    boxes = [t.get_window_extent(renderer) for t in texts]
    for i, box in enumerate(boxes):
        assert not any(box.overlaps(t.get_window_extent(renderer)) for t in ticks), texts[i]
        assert not any(box.overlaps(other) for other in boxes[i + 1 :]), texts[i]
    suptitle = boxes[0]
    assert suptitle.x0 >= 0 and suptitle.x1 <= figure.bbox.x1, "the title fits the figure"
    assert "[quick run]" in figure._suptitle.get_text()
