"""Figures: attention heatmaps per head, loss curves and the stage x experiment comparison."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from torch import Tensor  # noqa: E402

from transformer.io import write_figure  # noqa: E402


def attention_heatmaps(
    path: Path, maps: list[Tensor], tokens: list, title: str, key_tokens: list | None = None,
    axis_names: tuple[str, str] = ("query (token)", "key (token)"),
) -> None:  # fmt: skip
    """One heatmap per layer (rows) and head (columns). maps: per layer (H, T, S); the keys
    are ``tokens`` too unless ``key_tokens`` names them (cross-attention)."""
    layers, heads = len(maps), maps[0].shape[0]
    fig, axes = plt.subplots(
        layers, heads, figsize=(2.6 * heads + 1, 2.4 * layers + 0.6), squeeze=False
    )
    labels = [str(t) for t in tokens]
    key_labels = labels if key_tokens is None else [str(t) for t in key_tokens]
    for layer, weights in enumerate(maps):
        for head in range(heads):
            ax = axes[layer][head]
            sns.heatmap(
                weights[head].cpu().numpy(),
                ax=ax,
                vmin=0.0,
                vmax=1.0,
                cmap="viridis",
                cbar=False,
                square=True,
                xticklabels=key_labels,
                yticklabels=labels,
            )
            ax.set_title(f"layer {layer} head {head}", fontsize=9)
            ax.tick_params(labelsize=6)
            if head == 0:
                ax.set_ylabel(axis_names[0])
            if layer == layers - 1:
                ax.set_xlabel(axis_names[1])
    fig.colorbar(axes[0][0].collections[0], ax=axes, shrink=0.8, label="attention weight")
    fig.suptitle(title, fontsize=10)
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
    path: Path, accuracy: dict[str, dict[str, float]], chance: dict[str, float], quick=False
) -> None:
    """Grouped bars: held-out accuracy of each stage (bars) on each experiment (groups);
    ``quick`` says in the title that some of the runs were --quick ones."""
    note = QUICK_NOTE if quick else ""
    experiments = list(chance)
    versions = sorted({v for row in accuracy.values() for v in row})
    width = 0.8 / max(len(versions), 1)
    fig, ax = plt.subplots(figsize=(1.8 * len(experiments) + 2.6, 3.4))
    palette = sns.color_palette("deep", len(versions))
    for i, version in enumerate(versions):
        xs = [e + (i - (len(versions) - 1) / 2) * width for e in range(len(experiments))]
        ys = [accuracy[exp].get(version, float("nan")) for exp in experiments]
        ax.bar(xs, ys, width=width, label=version, color=palette[i])
    for e, exp in enumerate(experiments):
        ax.hlines(chance[exp], e - 0.45, e + 0.45, colors="black", linestyles=":", linewidth=1)
    ax.set_xticks(range(len(experiments)), experiments)
    ax.set_ylim(0, 1)
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"Which stage solves which task (dotted: chance){note}", fontsize=10)
    ax.legend(fontsize=8, title="stage", loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    write_figure(path, fig)
    plt.close(fig)
