"""The sequence-to-sequence experiment's summaries, table and figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from transformer.experiments import (
    plots,  # noqa: E402
    viewer,  # noqa: E402
)
from transformer.experiments.runner import (
    rounded,  # noqa: E402
    spread,  # noqa: E402
)
from transformer.experiments.seq2seq_tasks import show  # noqa: E402
from transformer.io import write_figure  # noqa: E402

MEASURES = {  # summary key -> (split, metric)
    "heldout_exact_match": ("heldout", "exact_match"),
    "heldout_token_accuracy": ("heldout", "token_accuracy"),
    "longer_exact_match": ("longer", "exact_match"),
    "longer_token_accuracy": ("longer", "token_accuracy"),
}
SPLIT_NAMES = {"heldout": "held-out examples", "longer": "longer than training"}


def summarise(runs: list[dict]) -> dict:
    """Mean, spread, min and max over seeds of each measure in ``MEASURES``."""
    return {
        key: spread([run[split][metric] for run in runs])
        for key, (split, metric) in MEASURES.items()
    }


def apart(a: dict, b: dict) -> bool:
    """Whether two spreads over seeds do not overlap (one's min above the other's max)."""
    return a["min"] > b["max"] or a["max"] < b["min"]


def comparison(per_version: dict[str, dict]) -> dict:
    """Per task and version: parameters, layers and each measure's spread over seeds; and,
    for each exact-match measure, whether v6's runs are apart from each other stage's (no
    overlap between their ranges over seeds)."""
    tasks = list(next(iter(per_version.values()))["tasks"])
    table: dict = {}
    for task in tasks:
        row = {}
        for version, results in per_version.items():
            runs = results["tasks"][task]["runs"]
            row[version] = {
                "parameters": runs[0]["parameters"],
                "num_layers": runs[0]["architecture"]["num_layers"],
                **results["tasks"][task]["summary"],
            }
        if "v6" in row:
            row["v6_apart_from"] = {
                measure: {
                    version: apart(row["v6"][measure], other[measure])
                    for version, other in row.items()
                    if version != "v6"
                }
                for measure in ("heldout_exact_match", "longer_exact_match")
            }
        table[task] = row
    return table


def table(compared: dict, seeds: list[int], quick: bool) -> str:
    """The comparison as Markdown: exact match (mean, min-max over seeds) per split."""
    note = "Quick runs (--quick): too short to mean anything.\n\n" if quick else ""
    lines = [
        note + f"Exact-match accuracy (greedy decoding), mean and min-max over seeds "
        f"{', '.join(map(str, seeds))}.\n",
        "| task | stage | parameters | layers | held-out examples | longer than training |",
        "|---|---|---|---|---|---|",
    ]
    for task, row in compared.items():
        for version, cells in row.items():
            if version == "v6_apart_from":
                continue
            shown = [
                f"{100 * cells[k]['mean']:.1f}% ({100 * cells[k]['min']:.1f}-"
                f"{100 * cells[k]['max']:.1f})"
                for k in ("heldout_exact_match", "longer_exact_match")
            ]
            layers = (
                f"{cells['num_layers']}+{cells['num_layers']}"
                if version == "v6"
                else str(cells["num_layers"])
            )
            lines.append(
                f"| {task} | {version} | {cells['parameters']:,} | {layers} | {shown[0]} | "
                f"{shown[1]} |"
            )
    return "\n".join(lines) + "\n"


def comparison_figure(compared: dict, seeds: list[int], quick: bool):
    """Two panels (held-out examples, longer lengths): exact match per task and stage, the
    bar at the mean over seeds, a line from the lowest to the highest seed."""
    tasks = list(compared)
    versions = [v for v in next(iter(compared.values())) if v != "v6_apart_from"]
    palette = sns.color_palette("deep", len(versions))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    width = 0.8 / len(versions)
    for ax, split in zip(axes, ("heldout", "longer"), strict=True):
        key = f"{split}_exact_match"
        for i, version in enumerate(versions):
            offset = (i - (len(versions) - 1) / 2) * width
            for t, task in enumerate(tasks):
                cells = compared[task][version][key]
                ax.bar(t + offset, cells["mean"], width=width, color=palette[i],
                       label=version if t == 0 else None)  # fmt: skip
                ax.vlines(t + offset, cells["min"], cells["max"], colors="black", linewidth=1)
        ax.set_xticks(range(len(tasks)), tasks)
        ax.set_ylim(0, 1.02)
        ax.set_title(SPLIT_NAMES[split], fontsize=10)
    axes[0].set_ylabel("exact-match accuracy")
    axes[1].legend(fontsize=8, title="stage", loc="upper left", bbox_to_anchor=(1.01, 1))
    note = plots.QUICK_NOTE if quick else ""
    fig.suptitle(
        f"Encoder-decoder (v6) against decoder-only stages of about its size "
        f"(bars: mean of {len(seeds)} seeds, lines: min-max){note}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def loss_figure(path: Path, per_task: dict[str, list[list[float]]], title: str) -> None:
    """One panel per task: the training loss of every seed."""
    fig, axes = plt.subplots(1, len(per_task), figsize=(3.2 * len(per_task), 3), squeeze=False)
    for ax, (task, curves) in zip(axes[0], per_task.items(), strict=True):
        for curve in curves:
            ax.plot(range(1, len(curve) + 1), curve, linewidth=0.8)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("training loss (nats per target token,\nwith label smoothing)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    write_figure(path, fig)
    plt.close(fig)


def cross_attention_figure(path: Path, maps, example: tuple, title: str) -> None:
    """Heatmaps of cross-attention per layer and head: rows are the decoder's inputs (BOS
    and the target), columns the source positions."""
    source, target = example
    rows = [f"{i}:{c}" for i, c in enumerate(show([1, *target]))]
    columns = [f"{i}:{c}" for i, c in enumerate(show(source))]
    plots.attention_heatmaps(
        path, maps, rows, title, key_tokens=columns,
        axis_names=("decoder input", "source"),
    )  # fmt: skip


def cross_attention_page(path: Path, maps, example: tuple, title: str) -> None:
    """The same cross-attention as an offline ``attention_<task>.html`` page (the viewer):
    queries are the decoder's inputs, keys the source."""
    source, target = example
    viewer.write_page(
        path, title, list(show([1, *target])), [rounded(m.tolist()) for m in maps],
        key_tokens=list(show(source)),
        caption="Cross-attention: each decoder input (query) over the source tokens (keys).",
    )  # fmt: skip
