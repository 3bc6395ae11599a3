"""The ablation's table, figures and summary line (see ``modern_ablation``)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIGURES = ("ablation.png", "length_generalisation.png")


def table(results: dict, throughput: dict) -> str:
    """A markdown table: one row per variant."""
    rows = [
        "| variant | changes | parameters | val bits/char (mean ± std over seeds) | "
        "range | vs v5 | tokens/s vs v5 | KV bytes/token | bits/char at [2T, 4T) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in results["variants"].items():
        bits = v["val_bits_per_char"]
        length = v["length"]
        far = (
            f"{length['bits_per_char']['2T_4T']['mean']:.3f}"
            if length["runs_past_context"]
            else "cannot (learned positions)"
        )
        ratio = throughput["relative_to_v5"][name]
        separated = "" if name == "v5" else (" (beyond the spread)" if v["separated_from_v5"]
                                             else " (within the spread)")  # fmt: skip
        delta = "" if name == "v5" else f"{v['difference_from_v5']:+.3f}{separated}"
        rows.append(
            f"| {name} | {v['changes']} | {v['num_parameters']:,} | "
            f"{bits['mean']:.3f} ± {bits['std']:.3f} | {bits['min']:.3f}–{bits['max']:.3f} | "
            f"{delta} | {ratio:.2f} | {v['kv_bytes_per_token']:,} | {far} |"
        )
    seeds = ", ".join(str(s) for s in results["seeds"])
    return "\n".join(rows) + f"\n\nSeeds {seeds}; T = {results['block_size']}.\n"


def ablation_figure(results: dict, throughput: dict):
    """Left: val bits/char per variant, one dot per seed and the mean. Right: tokens/s vs v5."""
    names = list(results["variants"])
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for row, name in enumerate(names):
        runs = results["variants"][name]["runs"]
        values = [run["val_bits_per_char"] for run in runs]
        left.scatter(values, [row] * len(values), color="tab:blue", alpha=0.6, s=18)
        left.scatter([sum(values) / len(values)], [row], color="black", marker="|", s=300)
    left.set_yticks(range(len(names)), names)
    left.invert_yaxis()
    left.set_xlabel("validation bits per character (dots: seeds, bar: mean)")
    left.set_title("What each switch buys: loss")
    ratios = [throughput["relative_to_v5"][name] for name in names]
    right.barh(range(len(names)), ratios, color="tab:orange")
    right.axvline(1.0, color="gray", linewidth=1)
    right.set_xlabel("training tokens/s relative to v5 (same run)")
    right.set_title("... and speed")
    figure.tight_layout()
    return figure


def length_figure(results: dict):
    """Loss by position on windows of 4T, for every variant that can read them."""
    block = results["block_size"]
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, v in results["variants"].items():
        if not v["length"]["runs_past_context"]:
            continue
        curves = [run["length"]["per_position"] for run in v["runs"]]
        mean = [sum(values) / len(values) for values in zip(*curves, strict=True)]
        axis.plot(range(len(mean)), mean, label=name, linewidth=1)
    axis.axvline(block, color="gray", linestyle="--", linewidth=1)
    axis.text(block, axis.get_ylim()[1], " T: the training context", va="top", fontsize=8)
    axis.set_xlabel("position in the window (bytes)")
    axis.set_ylabel("loss (bits per character)")
    learned = [n for n, v in results["variants"].items() if not v["length"]["runs_past_context"]]
    cannot = ", ".join(learned)
    title = f"RoPE past the training context (learned positions cannot: {cannot})"
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def summary(results: dict, throughput: dict) -> str:
    """A few lines for the terminal."""
    lines = []
    for name, v in results["variants"].items():
        bits = v["val_bits_per_char"]
        lines.append(
            f"{name:>9}: val {bits['mean']:.3f} ± {bits['std']:.3f} bits/char, "
            f"{throughput['relative_to_v5'][name]:.2f}x v5's tokens/s, "
            f"{v['kv_bytes_per_token']} KV bytes/token"
        )
    return "\n".join(lines)
