"""Collect the three experiments into one table and one figure: stages x experiments, over seeds.

    python experiments/compare.py [--run] [--num-seeds 3] [--results results/]
        [--out results/compare/]

With ``--run`` it first runs every experiment on every registered stage (``--version all``),
passing on ``--seed``, ``--num-seeds``, ``--steps``, ``--device`` and ``--quick``. It reads
every seed's run (``<results>/<experiment>/<version>/seed<S>/results.json``) and reports each
stage's mean, standard deviation, minimum and maximum over the seeds. Quick runs live in their
own folders (``<results>/<experiment>/quick/`` and ``<results>/compare/quick/``), so
``--quick`` reads and writes only those, and a table or figure made from them says so.
"""

from __future__ import annotations

from pathlib import Path

from transformer import cli
from transformer.contract import list_stages
from transformer.experiments import cli as task_cli
from transformer.experiments import ladder, plots
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
    cli.add_num_seeds(parser, task_cli.ALL_SEEDS, "every stage, with --run,")
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


def collect(results: Path, quick: bool = False) -> dict[str, dict[str, dict[int, dict]]]:
    """{experiment: {version: {seed: results.json contents}}} for every run that exists (the
    quick runs' folders with ``quick``)."""
    found: dict[str, dict[str, dict[int, dict]]] = {}
    for experiment in TASKS:
        for stage in list_stages():
            folder = cli.run_folder(results, experiment, quick) / stage.version
            runs = ladder.read_stage(folder)
            if runs:
                found.setdefault(experiment, {})[stage.version] = runs
    return found


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    seeds = cli.seeds_of(args, parser)
    out = args.out or cli.run_folder(args.results, "compare", args.quick)
    for path, flag in ((args.results, "--results"), (out, "--out")):
        problem = cli.check_writable(path, flag)
        if problem:
            parser.error(problem)
    cli.resolve_device(args.device, parser)
    if args.run:
        passed = ["--version", "all", "--seed", str(seeds[0]), "--num-seeds", str(len(seeds))]
        passed += ["--device", args.device]
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
    summaries = {
        experiment: {version: ladder.summarize(experiment, runs) for version, runs in per.items()}
        for experiment, per in found.items()
    }
    table = ladder.markdown_table(summaries)
    plots.comparison_chart(out / "comparison.png", *ladder.chart_groups(summaries))
    write_bytes(out / "comparison.md", table.encode())
    write_json(out / "comparison.json", summaries)
    print("Held-out accuracy, stages x experiments:\n")
    print(table)
    print(f"wrote {out / 'comparison.json'}, comparison.md and comparison.png")
    return 0
