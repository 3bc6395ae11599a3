"""Lab 02 checks: read a stage's attention weights and draw them as a heatmap.

``check_attention_maps(attention_maps)`` runs the learner's function on every registered
stage's sequence model (through the stage contract) and checks that it returns one
(heads, seq, seq) map per layer for the requested sequence. ``check_plot_attention
(plot_attention)`` reads the data, colour scale, tick labels and axis titles back from the
learner's figure. Figures are drawn with the Agg backend and closed afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import QuadMesh  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import Tensor  # noqa: E402

from transformer.contract import NEXT_TOKEN, ModelConfig, list_stages  # noqa: E402
from transformer.v1_basic_attention import causal_mask, scaled_scores, softmax_over_keys  # noqa: E402
from transformer_teaching.labs.checks import (  # noqa: E402
    Mistake,
    compare,
    describe,
    expect_tensor,
    fail,
    matches,
    run,
)

VOCAB, HEADS, LAYERS = 11, 4, 3
BATCH, SEQ, INDEX = 3, 6, 2  # the learner is asked for sequence INDEX of a (BATCH, SEQ) batch


def _config(stage) -> ModelConfig:
    """The lab's model size; a stage with one head (v1) keeps its one head."""
    heads = HEADS if stage.accepts("num_heads", HEADS) else None
    return ModelConfig(vocab_size=VOCAB, d_model=16, num_heads=heads, num_layers=LAYERS)


def _shape_problem(t: Tensor, maps: Tensor, index: int) -> str | None:
    """Why layer map ``t`` has the wrong shape; maps (B, H, T, T)."""
    expected = maps[index]  # (H, T, T)
    if t.shape == expected.shape:
        return None
    if t.shape == maps.shape:
        return f"this is the whole batch (B, H, T, T): take sequence {index} with maps[{index}]"
    if t.shape == expected.shape[1:]:
        if expected.shape[0] == 1:
            return "the heads axis is missing: keep it, (heads, seq, seq), even for one head"
        if matches(t, expected.mean(0), 1e-5):
            return "you averaged over the heads: keep every head, (heads, seq, seq)"
        for head in range(expected.shape[0]):
            if matches(t, expected[head], 1e-5):
                return f"this is head {head} only: keep every head, (heads, seq, seq)"
    if t.shape == (expected.shape[-1], VOCAB):
        return (
            "these are logits (seq, vocab), not attention: model(tokens) returns only the "
            "logits; ask for the maps with logits, maps = model(tokens, return_attention=True)"
        )
    return f"expected shape {tuple(expected.shape)} (heads, seq, seq), got {tuple(t.shape)}"


def check_attention_maps(maps_fn: Callable[..., Sequence[Tensor]]) -> None:
    """Lab 02: ``maps_fn(model, tokens, index)`` -> per layer, (heads, seq, seq) of one sequence."""
    __tracebackhide__ = True
    for stage in reversed(list_stages(NEXT_TOKEN)):  # the newest first: it has several heads
        torch.manual_seed(0)
        model = stage.build_model(_config(stage)).eval()
        gen = torch.Generator().manual_seed(1)
        tokens = torch.randint(0, VOCAB, (BATCH, SEQ), generator=gen)  # (B, T)
        with torch.no_grad():
            _, maps = model(tokens, return_attention=True)  # per layer (B, H, T, T)
        ctx = f"stage {stage.version}, {LAYERS} layers, " + describe(tokens=tokens)
        ctx += f", index {INDEX}"
        what = "attention_maps()"
        result = run(what, maps_fn, model, tokens, index=INDEX, context=ctx)
        if not isinstance(result, list | tuple):
            fail(f"{what}: expected a list with one tensor per layer, got {type(result)}", ctx)
        if len(result) != len(maps):
            fail(f"{what}: expected one map per layer ({len(maps)}), got {len(result)}", ctx)
        for layer, got in enumerate(result):
            got = expect_tensor(f"{what}[{layer}]", got, ctx)
            problem = _shape_problem(got, maps[layer], INDEX)
            if problem:
                fail(f"{what}[{layer}]: {problem}", ctx)
            mistakes: list[Mistake] = [
                (f"this is layer {other}'s map: entry {layer} must be layer {layer}", m[INDEX])
                for other, m in enumerate(maps)
                if other != layer
            ]
            mistakes.append(
                (f"you averaged over the batch: take sequence {INDEX}", maps[layer].mean(0))
            )
            mistakes += [
                (f"this is sequence {seq} of the batch, not sequence {INDEX}", maps[layer][seq])
                for seq in range(BATCH)
                if seq != INDEX
            ]
            compare(f"{what}[{layer}]", got, maps[layer][INDEX], mistakes, ctx)


# ---- plot_attention ----


def _plot_cases() -> list[tuple[Tensor, list, str]]:
    """(weights (T, T), tokens, title): one full map with no exact 0 or 1, one causal map."""
    gen = torch.Generator().manual_seed(2)
    q, k = torch.randn(2, 6, 8, generator=gen)  # (T, d_k) each
    full = softmax_over_keys(scaled_scores(q, k))  # (6, 6), not symmetric
    q, k = torch.randn(2, 4, 8, generator=gen)
    scores = scaled_scores(q, k).masked_fill(~causal_mask(4), float("-inf"))  # (4, 4)
    causal = softmax_over_keys(scores)  # (4, 4)
    return [
        (full, ["the", "cat", "sat", "on", "a", "mat"], "layer 0, head 1"),
        (causal, [3, 1, 4, 1], "causal"),
    ]


def _heatmap(fig: Figure) -> tuple[Axes, QuadMesh] | None:
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        for artist in ax.collections:
            if isinstance(artist, QuadMesh):
                return ax, artist
    return None


def _tick_texts(ticks: np.ndarray, labels: list) -> list[str]:
    """Tick label texts ordered by position: for a heatmap, row or column 0 first."""
    return [
        text.get_text() for _, text in sorted(zip(ticks, labels, strict=False), key=lambda p: p[0])
    ]


def _label_problem(axis: str, texts: list[str], labels: list[str]) -> str | None:
    role = "column j is key j, labelled tokens[j]" if axis == "x" else "row i is query i"
    role += "" if axis == "x" else ", labelled tokens[i]"
    arg = f"{axis}ticklabels=tokens"
    if texts == labels:
        return None
    if not any(texts):
        return f"the {axis} tick labels are missing: pass {arg}"
    if texts == [str(i) for i in range(len(labels))]:
        return f"the {axis} tick labels are the positions 0, 1, 2, ..., not the tokens: pass {arg}"
    if texts == labels[::-1]:
        return f"the {axis} tick labels are in reverse order: {role}"
    if len(texts) != len(labels):
        got = len(texts)
        return f"expected one {axis} tick label per token ({len(labels)}), got {got}: pass {arg}"
    return f"the {axis} tick labels are {texts}, expected {labels}: {role}"


def check_figure(fig: object, weights: Tensor, tokens: Sequence[object], title: str) -> None:
    """Raise LabCheckFailure unless ``fig`` is the heatmap of weights (T, T) described above."""
    __tracebackhide__ = True
    what = "plot_attention()"
    ctx = describe(weights=weights) + f", tokens {list(tokens)}, title {title!r}"
    if isinstance(fig, Axes):
        fail(f"{what}: return the Figure (ax.figure), not the Axes", ctx)
    if not isinstance(fig, Figure):
        fail(f"{what}: expected a matplotlib Figure, got {type(fig).__name__}", ctx)
    found = _heatmap(fig)
    if found is None:
        fail(f"{what}: no heatmap in the figure: draw it with seaborn.heatmap(..., ax=ax)", ctx)
    ax, mesh = found
    data = torch.as_tensor(np.ma.getdata(mesh.get_array()), dtype=torch.float32)
    T = weights.shape[0]
    data = data.reshape(T, T) if data.numel() == T * T else data
    if tuple(data.shape) != (T, T):
        fail(f"{what}: the heatmap has shape {tuple(data.shape)}, expected ({T}, {T})", ctx)
    transposed = (
        "the heatmap is transposed (keys on the rows): rows must be queries and columns keys, "
        "so pass weights, not weights.T"
    )
    compare(f"{what} heatmap data", data, weights.float(), [(transposed, weights.T.float())], ctx)
    low, high = mesh.get_clim()
    if (low, high) != (0.0, 1.0):
        fail(
            f"{what}: the colour scale is not fixed to [0, 1]: it runs from {low:.3g} to "
            f"{high:.3g}; pass vmin=0, vmax=1 so that every map uses the same colours",
            ctx,
        )
    labels = [str(t) for t in tokens]
    for axis, ticks, texts in (
        ("x", ax.get_xticks(), ax.get_xticklabels()),
        ("y", ax.get_yticks(), ax.get_yticklabels()),
    ):
        problem = _label_problem(axis, _tick_texts(ticks, texts), labels)
        if problem:
            fail(f"{what}: {problem}", ctx)
    xlabel, ylabel = ax.get_xlabel().lower(), ax.get_ylabel().lower()
    if "key" in ylabel and "quer" in xlabel:
        fail(
            f"{what}: the axis titles are swapped: rows (y axis) are queries and columns "
            "(x axis) keys",
            ctx,
        )
    if "key" not in xlabel or "quer" not in ylabel:
        fail(
            f"{what}: label the axes: ax.set_xlabel('key') and ax.set_ylabel('query'), "
            f"got x {ax.get_xlabel()!r}, y {ax.get_ylabel()!r}",
            ctx,
        )
    if title not in ax.get_title() and title not in fig.get_suptitle():
        fail(f"{what}: the title {title!r} is missing: ax.set_title(title)", ctx)


def check_plot_attention(plot_fn: Callable[..., object]) -> None:
    """Lab 02: ``plot_fn(weights (T, T), tokens, title)`` -> a Figure with one heatmap."""
    __tracebackhide__ = True
    for weights, tokens, title in _plot_cases():
        ctx = describe(weights=weights) + f", tokens {tokens}, title {title!r}"
        fig = run("plot_attention()", plot_fn, weights, tokens, title, context=ctx)
        try:
            check_figure(fig, weights, tokens, title)
        finally:
            if isinstance(fig, Figure):
                plt.close(fig)
