"""Tutorial 08's worked online-softmax example, and its two figures, drawn from the v8
benchmarks' results files.

* ``online_softmax.json``: one query against four keys read in two blocks of two, every
  running quantity after each block, next to the plain softmax's answer;

* ``memory_vs_length.png``: peak memory of attention's forward+backward against T, tiled
  attention next to SDPA's math backend (``benchmarks/tiled_attention.py``);
* ``tokens_per_s.png``: generation tokens/s against the number of new tokens, with the
  cache, without it and Hugging Face's ``generate`` (``benchmarks/generation.py``).

    poetry run python -m transformer_teaching.efficient   # the example; redraw the figures
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parents[2] / "tutorials" / "results" / "efficient"


SCORES = (1.0, 2.0, 4.0, 0.0)  # one query's scores q·k/√d for four keys; the max is in block 2
VALUES = (1.0, 2.0, 3.0, 4.0)  # one number per key, so the output is one number
BLOCK = 2


def online_softmax_example(scores=SCORES, values=VALUES, block: int = BLOCK) -> dict:
    """The online softmax by hand: per block the running max m, the rescale factor
    exp(m_old - m_new), the running sum l and the weighted sum a; output = a / l. Also the
    plain softmax's output and ``tiled_attention``'s, which must be the same number."""
    from transformer.v8_efficient import tiled_attention

    running_max, running_sum, weighted = -math.inf, 0.0, 0.0  # m, l, a
    steps = []
    for start in range(0, len(scores), block):
        s, v = scores[start : start + block], values[start : start + block]
        new_max = max(running_max, *s)
        rescale = math.exp(running_max - new_max)  # exp(m_old - m_new); 0 before block 1
        running_sum = rescale * running_sum + sum(math.exp(x - new_max) for x in s)
        weighted = rescale * weighted + sum(
            math.exp(x - new_max) * y for x, y in zip(s, v, strict=True)
        )
        steps.append({"max": new_max, "rescale": rescale, "sum": running_sum,
                      "weighted": weighted, "output": weighted / running_sum})  # fmt: skip
        running_max = new_max
    weights = torch.tensor(scores, dtype=torch.float64).softmax(-1)  # (4,)
    q = torch.tensor(scores, dtype=torch.float64)[None, None, None, :]  # (1, 1, 1, 4) as q
    k = torch.eye(len(scores), dtype=torch.float64)[None, None]  # (1, 1, 4, 4): q·k_j = s_j
    v = torch.tensor(values, dtype=torch.float64)[None, None, :, None]  # (1, 1, 4, 1)
    tiled = tiled_attention(q, k, v, block_size=block, scale=1.0)  # (1, 1, 1, 1)
    return {
        "scores": list(scores),
        "values": list(values),
        "block_size": block,
        "blocks": steps,
        "softmax_weights": weights.tolist(),
        "softmax_output": float(weights @ torch.tensor(values, dtype=torch.float64)),
        "tiled_attention_output": float(tiled),
    }


def rows_of(path: Path, device: str = "cpu") -> list[dict]:
    """The benchmark's rows measured on ``device``, by increasing T."""
    rows = json.loads(path.read_text())["rows"]
    return sorted((r for r in rows if r["device"] == device), key=lambda r: r["seq_len"])


def memory_figure(tiled: list[dict], path: Path) -> None:
    """Peak MiB against T on log-log axes, with the slopes of T and T² for the eye."""
    from transformer.experiments.plots import plt
    from transformer.io import write_figure

    lengths = [r["seq_len"] for r in tiled]
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    ax.plot(lengths, [r["peak_mib"] for r in tiled], "o-", label=tiled[0]["implementation"])
    ax.plot(lengths, [r["ref_peak_mib"] for r in tiled], "s-", label=tiled[0]["reference"])
    ax.set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="peak memory (MiB)",
           title="Attention forward + backward: memory against T")  # fmt: skip
    ax.set_xticks(lengths, [f"{t // 1024}k" for t in lengths])
    ax.minorticks_off()
    ax.legend()
    write_figure(path, fig)
    plt.close(fig)


def throughput_figure(generation: list[dict], path: Path) -> None:
    """tokens/s against new tokens for ours with the cache and both references."""
    from transformer.experiments.plots import plt
    from transformer.io import write_figure

    fig, ax = plt.subplots(figsize=(6, 4.4), layout="constrained")
    ours = [r for r in generation if r["reference"] == generation[0]["reference"]]
    lengths = [r["seq_len"] for r in ours]
    ax.plot(lengths, [r["tokens_per_s"] for r in ours], "o-", label=ours[0]["implementation"])
    for reference in dict.fromkeys(r["reference"] for r in generation):
        rows = [r for r in generation if r["reference"] == reference]
        ax.plot([r["seq_len"] for r in rows], [r["ref_tokens_per_s"] for r in rows], "s--",
                label=reference)  # fmt: skip
    ax.set(xscale="log", xlabel="new tokens T", ylabel="tokens / s", ylim=(0, None),
           title="Greedy generation speed against length")  # fmt: skip
    ax.set_xticks(lengths, [str(t) for t in lengths])
    ax.minorticks_off()  # the log axis's minor labels (6×10¹, 2×10², ...) only clutter
    fig.legend(loc="outside lower center", ncols=3)  # below the axes, over no line
    write_figure(path, fig)
    plt.close(fig)


def save(results: Path = RESULTS) -> None:
    """The worked example, and both figures from ``results``' tiled_attention.json and
    generation.json."""
    from transformer.io import write_json

    write_json(results / "online_softmax.json", online_softmax_example())
    memory_figure(rows_of(results / "tiled_attention.json"), results / "memory_vs_length.png")
    throughput_figure(rows_of(results / "generation.json"), results / "tokens_per_s.png")


if __name__ == "__main__":
    save()
    sys.exit(0)
