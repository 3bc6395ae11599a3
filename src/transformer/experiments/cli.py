"""The command line every task experiment script shares.

    python experiments/fibonacci.py --version v1|v2|...|all --seed 0 [--num-seeds N]
        --steps 1500 --device auto|cpu|cuda --out results/fibonacci/ [--quick]
        [--option KEY=VALUE ...]

Writes ``<out>/<version>/seed<S>/results.json``, three PNGs and the final
``checkpoint.safetensors`` per stage and seed; with ``--version all`` (three seeds unless
``--num-seeds`` says otherwise), also ``<out>/comparison.json`` and ``comparison.md``: each
stage's spread over the seeds. ``--option`` sets one of
the stage's own settings (``--option norm_first=true`` for v4; see ``stage.settings``).
Bad flags exit with status 2, a one-line message and nothing written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from transformer import cli
from transformer.contract import (
    NEXT_TOKEN,
    Stage,
    UnsupportedTaskError,
    get_stage,
    list_stages,
)
from transformer.experiments import ladder
from transformer.experiments.runner import (
    CHECKPOINT,
    HELDOUT_SEQUENCES,
    QUICK_HELDOUT_SEQUENCES,
    QUICK_TRAINING,
    TASK_TRAINING,
    StageRun,
    model_config,
    run_stage,
    save_stage,
)
from transformer.experiments.tasks import get_task
from transformer.io import write_bytes, write_json
from transformer.lm import TrainConfig

ALL_SEEDS = 3  # a comparison between stages shows its spread over at least three seeds


def build_parser(experiment: str) -> cli.OneLineParser:
    task = get_task(experiment)
    parser = cli.OneLineParser(
        prog=f"{experiment}.py",
        description=f"The {experiment} experiment: {task.description}. Probes the untrained "
        "stage, trains it, and reports held-out accuracy and where its attention goes.",
    )
    versions = ", ".join(s.version for s in list_stages(NEXT_TOKEN))
    parser.add_argument(
        "--version", default="v1",
        help=f"stage to run ({versions}) or 'all' (every stage that can run next-token tasks)",
    )  # fmt: skip
    cli.add_seed(parser)
    parser.add_argument(
        "--num-seeds", type=cli.positive_int, default=None,
        help=f"train each stage from seeds --seed, --seed+1, ... (default {ALL_SEEDS} with "
        "--version all, so that the comparison shows its spread; else 1)",
    )  # fmt: skip
    parser.add_argument(
        "--steps",
        type=cli.positive_int,
        default=None,
        help=f"training steps (default {TASK_TRAINING.steps}, {QUICK_TRAINING.steps} with --quick)",
    )
    cli.add_device(parser)
    parser.add_argument(
        "--out", type=Path, default=None,
        help=f"default results/{experiment}/ (results/{experiment}/quick/ with --quick)",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true",
        help="a short run for trying the command; written to its own folder and marked "
        "quick in results.json and the figures, so it never passes for a full run",
    )  # fmt: skip
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a stage option, such as norm_first=true (v4) or positional=learned (v3+); "
        "VALUE is read as JSON, else as a string; repeatable",
    )
    return parser


def parse_options(pairs: list[str], parser: cli.OneLineParser) -> dict:
    """``["norm_first=true", "positional=learned"]`` -> ``{"norm_first": True, ...}``."""
    options = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            parser.error(f"--option: expected KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options


def choose_versions(
    parser: argparse.ArgumentParser, version: str, task: str, allow_all: bool = True
) -> tuple[list[str], list[Stage]]:
    """``--version`` -> (the versions to run, the stages that 'all' leaves out because they
    cannot run ``task``). An unknown stage, or one that cannot run ``task``, is a one-line
    error (exit 2)."""
    known = [s.version for s in list_stages()]
    if allow_all and version == "all":
        skipped = [s for s in list_stages() if task not in s.tasks]
        return [s.version for s in list_stages(task)], skipped
    if version not in known:
        listed = ", ".join(known) + (", all" if allow_all else "")
        parser.error(f"--version: unknown stage {version!r}; known stages: {listed}")
    try:
        get_stage(version).require(task)
    except UnsupportedTaskError as error:
        parser.error(f"--version: {error}")
    return [version], []


def parse(experiment: str, argv: list[str] | None) -> tuple[argparse.Namespace, object]:
    parser = build_parser(experiment)
    args = parser.parse_args(argv)
    args.versions, args.skipped = choose_versions(parser, args.version, NEXT_TOKEN)
    if args.num_seeds is None:
        args.num_seeds = ALL_SEEDS if args.version == "all" else 1
    args.seeds = cli.seeds_of(args, parser)
    args.options = parse_options(args.option, parser)
    task = get_task(experiment)
    for version in args.versions:  # every stage must take every option, before any work
        try:
            get_stage(version).resolve(model_config(task, version, args.options))
        except (TypeError, ValueError) as error:
            parser.error(f"--option: {error}")
    args.out = args.out or cli.run_folder(Path("results"), experiment, args.quick)
    problem = cli.check_writable(args.out)
    if problem:
        parser.error(problem)
    device = cli.resolve_device(args.device, parser)
    cli.prepare_out(args.out, parser)
    return args, device


def train_config(args: argparse.Namespace) -> TrainConfig:
    base = QUICK_TRAINING if args.quick else TASK_TRAINING
    return base if args.steps is None else replace(base, steps=args.steps)


def summary_row(run: StageRun, seconds: float) -> str:
    r = run.result
    trained, probe = r["trained"], r["probe"]
    return (
        f"{r['version']:<6}{r['seed']:>4}{100 * trained['accuracy']:>9.1f}%"
        f"{100 * trained['chance']:>8.1f}%{100 * trained['seen_token_guess']:>8.1f}%"
        f"{trained['final_train_loss']:>12.3f}{trained['heldout_loss']:>11.3f}"
        f"{trained['best_head_attention_mass']:>10.2f}{trained['uniform_attention_mass']:>9.2f}"
        f"{probe['similar_weight']:>9.3f}{probe['dissimilar_weight']:>9.3f}{seconds:>7.1f}s"
    )


def probe_line(run: StageRun) -> str:
    """The untrained probe's second figure: the last query's weights across positions."""
    weights = run.result["probe"]["last_query_weights"]
    shown = " ".join(f"{w:.2f}" for w in weights)
    return (
        f"{run.result['version']} seed {run.result['seed']} untrained, last query's weights "
        f"across positions (layer 0, mean of heads): {shown}  "
        f"(range {min(weights):.2f}-{max(weights):.2f})"
    )


HEADER = (
    f"{'stage':<6}{'seed':>4}{'accuracy':>10}{'chance':>9}{'guess':>9}{'train loss':>12}"
    f"{'held loss':>11}{'mass@need':>10}{'uniform':>9}{'sim (0)':>9}{'dis (0)':>9}{'time':>8}"
)
LEGEND = (
    "accuracy: held-out, at scored positions. guess: accuracy of guessing among the tokens "
    "seen so far, a baseline that needs no order. mass@need: the best head's attention on the "
    "positions the answer needs (trained); uniform: the same for evenly spread attention. "
    "sim/dis (0): untrained probe, mean weight on keys with the same / another token."
)


def main(experiment: str, argv: list[str] | None = None) -> int:
    args, device = parse(experiment, argv)
    task = get_task(experiment)
    config = train_config(args)
    heldout = QUICK_HELDOUT_SEQUENCES if args.quick else HELDOUT_SEQUENCES
    cli.make_deterministic(device)
    seeds = ", ".join(map(str, args.seeds))
    print(f"{experiment}: {task.description}; seeds {seeds}, {config.steps} steps, {device}")
    for stage in args.skipped:
        reason = stage.limits[NEXT_TOKEN]
        print(f"skipping {stage.version}: it cannot run next-token tasks ({reason})")
    rows, probes, summaries = [], [], {}
    for version in args.versions:
        runs = {}
        for seed in args.seeds:
            start = time.perf_counter()
            folder = ladder.seed_folder(args.out, version, seed)
            run = run_stage(
                task,
                version,
                seed,
                config,
                device,
                heldout_sequences=heldout,
                options=args.options,
                checkpoint_path=folder / CHECKPOINT,
            )
            if args.quick:
                run.result["quick"] = True
            path = save_stage(run, folder)
            rows.append(summary_row(run, time.perf_counter() - start))
            probes.append(probe_line(run))
            runs[seed] = run.result
            print(f"  wrote {path} and its figures", file=sys.stderr)
        summaries[version] = ladder.summarize(experiment, runs)
    print(HEADER, *rows, LEGEND, "", *probes, sep="\n")
    table = ladder.markdown_table({experiment: summaries})
    print("", table, sep="\n")
    if args.version == "all":
        path = args.out / "comparison.json"
        write_json(path, {"experiment": experiment, "stages": summaries})
        write_bytes(args.out / "comparison.md", table.encode())
        print(f"comparison written to {path} and comparison.md")
    return 0
