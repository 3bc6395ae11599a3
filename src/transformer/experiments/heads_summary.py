"""Every stage's heads on every task, over seeds: the table tutorial 10 reads.

From the ``heads`` section each task run writes (``transformer.experiments.heads``), per task
and stage: the held-out accuracy; the best head's score on each of the four scores; the head
with the task's own score highest, that score, and the accuracy without it; and the head
whose mean ablation costs the most, and the accuracy without it. Each as its spread over the
seeds (mean, sample standard deviation, min, max).
"""

from __future__ import annotations

from transformer.experiments.heads import SCORES
from transformer.experiments.runner import spread


def best(table: list[list[float]]) -> float:
    """The largest entry of an (L, H) table of scores."""
    return max(max(row) for row in table)


def stage_summary(runs: dict[int, dict]) -> dict:
    """One stage on one task, from its runs {seed: results.json contents}."""
    heads = [runs[seed]["trained"]["heads"] for seed in sorted(runs)]
    name = heads[0]["task_score"]
    ablations = [h["ablation"] for h in heads]
    return {
        "seeds": sorted(runs),
        "task_score": name,
        "accuracy": spread([a["accuracy"] for a in ablations]),
        "best_score": {s: spread([best(h["scores"][s]) for h in heads]) for s in SCORES},
        "top_scoring_head": [a["top_scoring"]["head"] for a in ablations],
        "top_scoring_score": spread([a["top_scoring"][name] for a in ablations]),
        "accuracy_without_top_scoring": spread(
            [a["top_scoring"]["accuracy_without"] for a in ablations]
        ),
        "most_needed_head": [a["most_needed"]["head"] for a in ablations],
        "accuracy_without_most_needed": spread(
            [a["most_needed"]["accuracy_without"] for a in ablations]
        ),
    }


def summarise(collected: dict[str, dict[str, dict[int, dict]]]) -> dict:
    """{task: {version: stage_summary}} for every task and stage with runs."""
    return {
        task: {version: stage_summary(runs) for version, runs in stages.items() if runs}
        for task, stages in collected.items()
    }


def shown(value: dict, percent: bool = False) -> str:
    """A spread as 'mean ± std [min, max]', in percent or to two decimals."""
    scale, unit, digits = (100, "%", 1) if percent else (1, "", 2)
    parts = [scale * value[k] for k in ("mean", "std", "min", "max")]
    return (
        f"{parts[0]:.{digits}f}{unit} ± {parts[1]:.{digits}f} "
        f"[{parts[2]:.{digits}f}, {parts[3]:.{digits}f}]"
    )


def heads_of(pairs: list[list[int]]) -> str:
    return " ".join(f"L{layer}H{head}" for layer, head in pairs)


def markdown(summary: dict) -> str:
    """One table per task: a row per stage."""
    lines = [
        "What the heads do, per task and stage: mean ± sample standard deviation [min, max] "
        "over the seeds. Ablation replaces one head's output by its mean (transformer.inspect).",
    ]
    for task, stages in summary.items():
        name = next(iter(stages.values()))["task_score"]
        lines += [
            "",
            f"## {task} (its score: {name})",
            "",
            f"| stage | accuracy | best {name} | that head, per seed | accuracy without it "
            "| most needed head, per seed | accuracy without it |",
            "|---|---|---|---|---|---|---|",
        ]
        for version, s in stages.items():
            lines.append(
                f"| {version} | {shown(s['accuracy'], True)} | {shown(s['top_scoring_score'])} "
                f"| {heads_of(s['top_scoring_head'])} "
                f"| {shown(s['accuracy_without_top_scoring'], True)} "
                f"| {heads_of(s['most_needed_head'])} "
                f"| {shown(s['accuracy_without_most_needed'], True)} |"
            )
    return "\n".join(lines) + "\n"
