"""Why √d_k: measure how dot products and the softmax behave with and without the scaling.

For random queries and keys with unit-variance entries, q·k has variance d_k, so without
scaling the scores spread wider as d_k grows and the softmax puts almost all weight on one
key (it saturates, and its gradients vanish). Dividing by √d_k keeps the variance at 1.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from transformer.io import write_json
from transformer.v1_basic_attention import scaled_scores

HEAD_DIMS = (4, 16, 64, 256)
NUM_KEYS = 16
NUM_QUERIES = 4096
SATURATED = 0.99  # a row counts as saturated when one key gets more than this weight


def measure(seed: int = 0) -> dict:
    """Per d_k: score variance and softmax saturation, unscaled and scaled."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for d_k in HEAD_DIMS:
        query = torch.randn(NUM_QUERIES, 1, d_k, generator=generator)  # (N, 1, d_k)
        key = torch.randn(NUM_QUERIES, NUM_KEYS, d_k, generator=generator)  # (N, S, d_k)
        scaled = scaled_scores(query, key)  # (N, 1, S)
        unscaled = scaled * math.sqrt(d_k)  # (N, 1, S) plain q·k
        row = {"d_k": d_k}
        for name, scores in (("unscaled", unscaled), ("scaled", scaled)):
            weights = torch.softmax(scores, dim=-1)  # (N, 1, S)
            row[name] = {
                "score_variance": round(scores.var().item(), 4),
                "mean_max_weight": round(weights.max(dim=-1).values.mean().item(), 4),
                "saturated_fraction": round(
                    (weights.max(dim=-1).values > SATURATED).float().mean().item(), 4
                ),
            }
        rows.append(row)
    return {
        "seed": seed,
        "num_keys": NUM_KEYS,
        "num_queries": NUM_QUERIES,
        "saturation_threshold": SATURATED,
        "rows": rows,
    }


def plot(result: dict, path: Path) -> None:
    from transformer.experiments.plots import plt
    from transformer.io import write_figure

    d_ks = [row["d_k"] for row in result["rows"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3))
    for name, style in (("unscaled", "o-"), ("scaled", "s-")):
        left.plot(d_ks, [r[name]["score_variance"] for r in result["rows"]], style, label=name)
        right.plot(d_ks, [r[name]["mean_max_weight"] for r in result["rows"]], style, label=name)
    left.set(
        xscale="log",
        yscale="log",
        xlabel="d_k",
        ylabel="variance of the scores",
        title="q·k grows with d_k; q·k/√d_k does not",
    )
    right.axhline(1 / result["num_keys"], color="grey", linestyle=":", label="uniform")
    right.set(
        xscale="log",
        ylim=(0, 1.02),
        xlabel="d_k",
        ylabel="mean largest weight",
        title=f"softmax over {result['num_keys']} keys",
    )
    for ax in (left, right):
        ax.set_xticks(d_ks, [str(d) for d in d_ks])
        ax.legend(fontsize=8)
    fig.tight_layout()
    write_figure(path, fig)
    plt.close(fig)


def save(out_dir: Path, seed: int = 0) -> dict:
    result = measure(seed)
    plot(result, out_dir / "scaling.png")
    write_json(out_dir / "scaling.json", result)
    return result
