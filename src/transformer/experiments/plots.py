"""Figures: attention heatmaps per head, loss curves and the stage x experiment comparison."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from torch import Tensor  # noqa: E402

from transformer.io import write_figure  # noqa: E402


def attention_heatmaps(
    path: Path, maps: list[Tensor], tokens: list, title: str, key_tokens: list | None = None,
    axis_names: tuple[str, str] = ("query", "key"),
) -> None:  # fmt: skip
    """One heatmap per layer (rows) and head (columns). maps: per layer (H, T, S); the keys
    are ``tokens`` too unless ``key_tokens`` names them (cross-attention). Each tick reads
    ``position:token``, so that "k places back" can be read off the axes."""
    layers, heads = len(maps), maps[0].shape[0]
    width = 2.6 * heads + 1.4
    fig, axes = plt.subplots(
        layers, heads, figsize=(width, 2.6 * layers + 0.8), squeeze=False, layout="constrained"
    )
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]
    key_labels = labels if key_tokens is None else [f"{i}:{t}" for i, t in enumerate(key_tokens)]
    image = None
    for layer, weights in enumerate(maps):
        for head in range(heads):
            ax = axes[layer][head]
            image = ax.imshow(
                weights[head].cpu().numpy(),
                vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest",
            )  # fmt: skip
            ax.set_xticks(range(len(key_labels)), key_labels, rotation=90)
            ax.set_yticks(range(len(labels)), labels)
            ax.set_title(f"layer {layer} head {head}", fontsize=9)
            ax.tick_params(labelsize=6, length=0)
            if head == 0:
                ax.set_ylabel(f"{axis_names[0]} (position:token)", fontsize=8)
            if layer == layers - 1:
                ax.set_xlabel(f"{axis_names[1]} (position:token)", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    body = textwrap.fill(title.replace(QUICK_NOTE, ""), int(9 * width), break_on_hyphens=False)
    fig.suptitle(body + (f"\n{QUICK_NOTE.strip()}" if QUICK_NOTE in title else ""), fontsize=10)
    write_figure(path, fig)
    plt.close(fig)


def loss_curve(path: Path, losses: list[float], chance_loss: float, title: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(1, len(losses) + 1), losses, linewidth=0.8, label="training loss")
    ax.axhline(chance_loss, color="grey", linestyle="--", linewidth=0.8, label="uniform guess")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    write_figure(path, fig)
    plt.close(fig)


QUICK_NOTE = " [quick run]"  # on every figure drawn from --quick results


def comparison_chart(
    path: Path, groups: dict[str, dict[str, dict]], chance: dict[str, float], quick=False
) -> None:
    """Grouped bars: the mean held-out accuracy of each stage (bars) on each task column
    (groups), a line from the lowest to the highest seed, and a dot per seed; dotted: chance.
    groups: {column: {version: {"mean", "min", "max", "per_seed"}}}. ``quick`` says in the
    title that some of the runs were --quick ones."""
    note = QUICK_NOTE if quick else ""
    columns = list(groups)
    versions = sorted({v for row in groups.values() for v in row}, key=lambda v: int(v[1:]))
    seeds = max(len(s["per_seed"]) for row in groups.values() for s in row.values())
    width = 0.8 / max(len(versions), 1)
    fig, ax = plt.subplots(figsize=(1.9 * len(columns) + 2.6, 3.6))
    palette = sns.color_palette("deep", len(versions))
    for i, version in enumerate(versions):
        for c, column in enumerate(columns):
            if version not in groups[column]:
                continue
            s, x = groups[column][version], c + (i - (len(versions) - 1) / 2) * width
            ax.bar(x, s["mean"], width=width, color=palette[i], label=version if c == 0 else None)
            ax.vlines(x, s["min"], s["max"], colors="black", linewidth=0.8)
            ax.scatter([x] * len(s["per_seed"]), s["per_seed"], s=6, color="black", zorder=3)
    for c, column in enumerate(columns):
        ax.hlines(chance[column], c - 0.45, c + 0.45, colors="black", linestyles=":", linewidth=1)
    ax.set_xticks(range(len(columns)), [c.replace(", ", ",\n") for c in columns], fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("held-out accuracy")
    ax.set_title(
        f"Which stage solves which task: mean of {seeds} seeds, line from lowest to highest, "
        f"dots per seed (dotted: chance){note}",
        fontsize=9,
        wrap=True,
    )
    ax.legend(fontsize=8, title="stage", loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    write_figure(path, fig)
    plt.close(fig)
