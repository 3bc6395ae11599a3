"""Collect the three experiments into one table and one figure: stages x experiments.

    python experiments/compare.py [--run] [--results results/] [--out results/compare/]

With ``--run`` it first runs every experiment on every registered stage (``--version all``),
passing on ``--seed``, ``--steps``, ``--device`` and ``--quick``. Quick runs live in their
own folders (``<results>/<experiment>/quick/`` and ``<results>/compare/quick/``), so
``--quick`` reads and writes only those, and a table or figure made from them says so.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformer import cli
from transformer.contract import list_stages
from transformer.experiments import cli as task_cli
from transformer.experiments import plots
from transformer.experiments.tasks import TASKS
from transformer.io import write_bytes, write_json


def build_parser() -> cli.OneLineParser:
    parser = cli.OneLineParser(prog="compare.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="where the experiments wrote their results (default results/)",
    )
    parser.add_argument(
        "--out", type=Path, default=None,
        help="default <results>/compare/ (<results>/compare/quick/ with --quick)",
    )  # fmt: skip
    parser.add_argument("--run", action="store_true", help="run all experiments first")
    cli.add_seed(parser)
    parser.add_argument(
        "--steps", type=cli.positive_int, default=None, help="training steps, with --run"
    )
    cli.add_device(parser)
    parser.add_argument(
        "--quick", action="store_true",
        help="the quick runs: with --run, run the experiments with --quick; read them from "
        "<results>/<experiment>/quick/",
    )  # fmt: skip
    return parser


def read_results(path: Path) -> dict:
    """One results.json, or a ValueError naming it when it is damaged or not a run's."""
    try:
        run = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: expected a results file, got damaged JSON ({error})") from None
    keys = ("trained", "seed", "training", "device")
    if not isinstance(run, dict) or not all(k in run for k in keys):
        raise ValueError(f"{path}: expected a results file with keys {list(keys)}")
    return run


def collect(results: Path, quick: bool = False) -> dict[str, dict[str, dict]]:
    """{experiment: {version: results.json contents}} for every file that exists (the quick
    runs' folders with ``quick``)."""
    found: dict[str, dict[str, dict]] = {}
    for experiment in TASKS:
        for stage in list_stages():
            path = cli.run_folder(results, experiment, quick) / stage.version / "results.json"
            if path.is_file():
                found.setdefault(experiment, {})[stage.version] = read_results(path)
    return found


def any_quick(found: dict[str, dict[str, dict]]) -> bool:
    return any(run.get("quick") for runs in found.values() for run in runs.values())


def markdown_table(found: dict[str, dict[str, dict]]) -> str:
    """Held-out accuracy per stage (rows) and experiment (columns), with chance; a line
    above it says so when some runs were quick ones."""
    experiments = [e for e in TASKS if e in found]
    versions = [s.version for s in list_stages() if any(s.version in found[e] for e in found)]
    header = "| stage | " + " | ".join(experiments) + " |"
    lines = [header, "|---" * (len(experiments) + 1) + "|"]
    for version in versions:
        cells = []
        for experiment in experiments:
            run = found[experiment].get(version)
            cells.append("—" if run is None else f"{100 * run['trained']['accuracy']:.1f}%")
        lines.append(f"| {version} | " + " | ".join(cells) + " |")
    chance = [f"{100 * TASKS[e].chance:.1f}%" for e in experiments]
    lines.append("| chance | " + " | ".join(chance) + " |")
    guess = [
        f"{100 * next(iter(found[e].values()))['trained']['seen_token_guess']:.1f}%"
        for e in experiments
    ]
    lines.append("| guess among seen tokens | " + " | ".join(guess) + " |")
    if any_quick(found):
        lines.insert(
            0, "Quick runs: short training for trying the commands, not for conclusions.\n"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = args.out or cli.run_folder(args.results, "compare", args.quick)
    for path, flag in ((args.results, "--results"), (out, "--out")):
        problem = cli.check_writable(path, flag)
        if problem:
            parser.error(problem)
    cli.resolve_device(args.device, parser)
    if args.run:
        passed = ["--version", "all", "--seed", str(args.seed), "--device", args.device]
        passed += ["--steps", str(args.steps)] if args.steps is not None else []
        passed += ["--quick"] if args.quick else []
        for experiment in TASKS:
            out_flag = ["--out", str(cli.run_folder(args.results, experiment, args.quick))]
            task_cli.parse(experiment, [*passed, *out_flag])
        for experiment in TASKS:
            out_flag = ["--out", str(cli.run_folder(args.results, experiment, args.quick))]
            task_cli.main(experiment, [*passed, *out_flag])
    try:
        found = collect(args.results, args.quick)
    except ValueError as error:
        parser.error(f"--results: {error}")
    if not found:
        parser.error(
            f"--results: expected experiment results under {args.results}/, found none "
            "(run the experiments first, or pass --run)"
        )
    table = markdown_table(found)
    summary = {
        experiment: {
            version: {
                key: run["trained"][key]
                for key in (
                    "accuracy",
                    "chance",
                    "seen_token_guess",
                    "heldout_loss",
                    "best_head_attention_mass",
                )
            }
            | {"seed": run["seed"], "steps": run["training"]["steps"], "device": run["device"]}
            | ({"quick": True} if run.get("quick") else {})
            for version, run in runs.items()
        }
        for experiment, runs in found.items()
    }
    plots.comparison_chart(
        out / "comparison.png",
        {e: {v: r["trained"]["accuracy"] for v, r in runs.items()} for e, runs in found.items()},
        {e: TASKS[e].chance for e in found},
        quick=any_quick(found),
    )
    write_bytes(out / "comparison.md", table.encode())
    write_json(out / "comparison.json", summary)
    print("Held-out accuracy, stages x experiments:\n")
    print(table)
    print(f"wrote {out / 'comparison.json'}, comparison.md and comparison.png")
    return 0
