"""The stage ladder over seeds: where each seed's run lives, and its spread per stage.

One run of one stage from one seed writes ``<out>/<version>/seed<S>/results.json``. A
comparison between stages summarises every seed of every stage: the mean, the sample
standard deviation, the minimum and the maximum of each measure, and the value per seed.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformer.experiments.runner import rounded, spread
from transformer.experiments.tasks import TASKS

SPREAD_MEASURES = ("accuracy", "seen_token_guess", "heldout_loss", "final_train_loss",
                   "best_head_attention_mass")  # fmt: skip


def seed_folder(out: Path, version: str, seed: int) -> Path:
    """Where the run of ``version`` from ``seed`` writes its results, figures and checkpoint."""
    return out / version / f"seed{seed}"


def read_results(path: Path) -> dict:
    """One results.json, or a ValueError naming it when it is damaged or not a run's."""
    try:
        run = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: expected a results file, got damaged JSON ({error})") from None
    keys = ("trained", "seed", "training", "device", "experiment", "version")
    if not isinstance(run, dict) or not all(k in run for k in keys):
        raise ValueError(f"{path}: expected a results file with keys {list(keys)}")
    return run


def read_stage(folder: Path) -> dict[int, dict]:
    """Every seed's results of one stage, {seed: results}, from ``folder``/seed*/; a
    ValueError when a file is damaged or its seed is not its folder's."""
    runs = {}
    for path in sorted(folder.glob("seed*/results.json")):
        run = read_results(path)
        if path.parent.name != f"seed{run['seed']}":
            raise ValueError(f"{path}: expected seed {path.parent.name[4:]}, got {run['seed']}")
        runs[run["seed"]] = run
    return dict(sorted(runs.items()))


def summarize(experiment: str, runs: dict[int, dict]) -> dict:
    """One stage's runs {seed: results} -> the spread of each measure over the seeds.

    ``accuracy`` is on unseen sequences; a task's extra split adds ``<split>_accuracy``
    (fibonacci: ``unseen_pairs_accuracy``). ``<measure>_per_seed`` lists the values in
    the order of ``seeds``.
    """
    trained = [run["trained"] for run in runs.values()]
    measures = {m: [t[m] for t in trained] for m in SPREAD_MEASURES}
    for split in TASKS[experiment].extra_splits:
        measures[f"{split}_accuracy"] = [t[split]["accuracy"] for t in trained]
    first = next(iter(runs.values()))
    summary = {"seeds": list(runs), "chance": trained[0]["chance"]}
    summary |= {m: spread(values) for m, values in measures.items()}
    summary |= {f"{m}_per_seed": rounded(values) for m, values in measures.items()}
    summary |= {"steps": first["training"]["steps"], "device": first["device"]}
    return summary | ({"quick": True} if any(r.get("quick") for r in runs.values()) else {})


def accuracy_columns(experiment: str) -> list[tuple[str, str]]:
    """(column title, summary key) of each accuracy a table shows for ``experiment``."""
    extra = TASKS[experiment].extra_splits
    if not extra:
        return [(experiment, "accuracy")]
    columns = [(f"{experiment}, unseen sequences", "accuracy")]
    return columns + [(f"{experiment}, {s.replace('_', ' ')}", f"{s}_accuracy") for s in extra]


def chart_groups(summaries: dict[str, dict[str, dict]]) -> tuple[dict, dict, bool]:
    """What the comparison figure draws: ({column: {version: spread + "per_seed"}},
    {column: chance}, whether any run was quick)."""
    groups, chance = {}, {}
    for experiment in (e for e in TASKS if e in summaries):
        for title, key in accuracy_columns(experiment):
            groups[title] = {
                version: summary[key] | {"per_seed": summary[f"{key}_per_seed"]}
                for version, summary in summaries[experiment].items()
            }
            chance[title] = TASKS[experiment].chance
    quick = any(r.get("quick") for runs in summaries.values() for r in runs.values())
    return groups, chance, quick


def cell(summary: dict | None, key: str, all_seeds: list[int]) -> str:
    """``mean ± std [min, max]`` in percent, and the seed count where it is not every seed's."""
    if summary is None:
        return "—"
    s = summary[key]
    if len(summary["seeds"]) == 1:
        return f"{100 * s['mean']:.1f}%" + ("" if summary["seeds"] == all_seeds else " (1 seed)")
    low, high = 100 * s["min"], 100 * s["max"]
    text = f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}% [{low:.1f}, {high:.1f}]"
    return text if summary["seeds"] == all_seeds else f"{text} ({len(summary['seeds'])} seeds)"


def markdown_table(summaries: dict[str, dict[str, dict]]) -> str:
    """Held-out accuracy per stage (rows) and experiment (columns) over seeds, with chance
    and the guessing baseline; says so when runs were quick ones or have one seed only."""
    experiments = [e for e in TASKS if e in summaries]
    columns = [(e, title, key) for e in experiments for title, key in accuracy_columns(e)]
    versions = sorted({v for runs in summaries.values() for v in runs}, key=lambda v: int(v[1:]))
    seeds = sorted({s for runs in summaries.values() for r in runs.values() for s in r["seeds"]})
    lines = [
        f"Held-out accuracy over seeds {', '.join(map(str, seeds))}: mean ± sample standard "
        "deviation [min, max].",
        "",
        "| stage | " + " | ".join(title for _, title, _ in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for version in versions:
        cells = [cell(summaries[e].get(version), key, seeds) for e, _, key in columns]
        lines.append(f"| {version} | " + " | ".join(cells) + " |")
    chance = [f"{100 * TASKS[e].chance:.1f}%" for e, _, _ in columns]
    lines.append("| chance | " + " | ".join(chance) + " |")
    guess = [  # the baseline of the unseen sequences; "—" for a task's extra split
        f"{100 * next(iter(summaries[e].values()))['seen_token_guess']['mean']:.1f}%"
        if key == "accuracy"
        else "—"
        for e, _, key in columns
    ]
    lines.append("| guess among seen tokens | " + " | ".join(guess) + " |")
    if len(seeds) < 3:
        lines.insert(0, "One or two seeds: too few to tell a difference from seed noise; "
                        "run with --num-seeds 3 or more.\n")  # fmt: skip
    if any(r.get("quick") for runs in summaries.values() for r in runs.values()):
        lines.insert(
            0, "Quick runs: short training for trying the commands, not for conclusions.\n"
        )
    return "\n".join(lines) + "\n"
