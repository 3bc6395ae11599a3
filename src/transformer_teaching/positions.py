"""What the sinusoidal encoding looks like, and the property the paper chose it for.

PE(p)·PE(q) = Σ_i cos((p - q)·ω_i): the dot product of two position vectors depends only on
their distance, not on where they are. This module measures that on the table v3 uses and
draws the table and its dot products.
"""

from __future__ import annotations

import math
from pathlib import Path

from transformer.io import write_json
from transformer.v3_positional import sinusoidal_encoding

MAX_LEN = 64
D_MODEL = 64  # the experiments' model width
OFFSETS = (0, 1, 4, 16)


def measure(max_len: int = MAX_LEN, d_model: int = D_MODEL) -> dict:
    """Dot products PE(p)·PE(p+k) for several offsets k, over every start p."""
    table = sinusoidal_encoding(max_len, d_model).double()  # (max_len, d_model)
    dots = table @ table.T  # (max_len, max_len)
    by_offset = {}
    for k in OFFSETS:
        values = dots.diagonal(offset=k)  # PE(p)·PE(p+k) for every p
        by_offset[str(k)] = {
            "mean": round(values.mean().item(), 6),
            "spread": round((values.max() - values.min()).item(), 6),
        }
    return {
        "max_len": max_len,
        "d_model": d_model,
        "shortest_wavelength": round(2 * math.pi, 6),
        "longest_wavelength": round(2 * math.pi * 10000 ** ((d_model - 2) / d_model), 3),
        "dot_by_offset": by_offset,
    }


def plot(path: Path, max_len: int = MAX_LEN, d_model: int = D_MODEL) -> None:
    from transformer.experiments.plots import plt, sns
    from transformer.io import write_figure

    table = sinusoidal_encoding(max_len, d_model)  # (max_len, d_model)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    sns.heatmap(table.numpy(), ax=left, cmap="RdBu_r", vmin=-1, vmax=1)  # symmetric: 0 is white
    left.set(xlabel="dimension", ylabel="position", title="PE(pos, dim): fast clocks on the left")
    sns.heatmap((table @ table.T).numpy(), ax=right, cmap="viridis", square=True)
    right.set(xlabel="position q", ylabel="position p", title="PE(p)·PE(q) depends on p - q only")
    for ax, width in ((left, d_model), (right, max_len)):
        ax.set_xticks(range(0, width, 8), range(0, width, 8))
        ax.set_yticks(range(0, max_len, 8), range(0, max_len, 8))
    fig.tight_layout()
    write_figure(path, fig)
    plt.close(fig)


def save(out_dir: Path) -> dict:
    result = measure()
    plot(out_dir / "sinusoidal_encoding.png")
    write_json(out_dir / "positions.json", result)
    return result
