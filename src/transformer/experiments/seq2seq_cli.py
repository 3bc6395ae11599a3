"""The sequence-to-sequence experiment, as a command.

    python experiments/seq2seq.py --version v6|v5|v7|all --task copy|reverse|sort|add|all
        --seed 0 --num-seeds 1 --steps 700 --device auto|cpu|cuda --out results/seq2seq/
        [--quick] [--label-smoothing 0.1] [--schedule inverse_sqrt|cosine]

Trains each stage on each task from seeds ``--seed``, ``--seed``+1, ... and writes
``<out>/<version>/results.json`` (per task and seed: exact match and token accuracy on
held-out examples and on longer sources, the loss curve's evaluations; v6 also beam search
and where its cross-attention looks), ``loss_curves.png`` and, for v6, one
``cross_attention_<task>.png`` and ``attention_<task>.html`` (the offline viewer) per task.
With more than one stage, also
``<out>/comparison.json``, ``comparison.md`` and ``comparison.png``. Bad flags exit with
status 2, a one-line message and nothing written.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from transformer import cli
from transformer.contract import SEQ2SEQ, list_stages
from transformer.experiments import seq2seq_report as report
from transformer.experiments import seq2seq_runner as runner
from transformer.experiments.cli import choose_versions
from transformer.experiments.seq2seq_tasks import TASKS
from transformer.io import write_bytes, write_figure, write_json
from transformer.lm.training import SCHEDULES

NAME = "seq2seq"
DEFAULT_ROOT = Path("results")


def smoothing(text: str) -> float:
    """A label-smoothing share in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def build_parser() -> cli.OneLineParser:
    parser = cli.OneLineParser(
        prog=f"{NAME}.py",
        description="Train stages to write a target from a source (copy, reverse, sort, "
        "addition): v6 as an encoder-decoder, v5 and v7 as decoder-only models of about the "
        "same size that read the source as a prefix. Reports exact match and token accuracy "
        "on held-out examples and on sources longer than any in training.",
    )
    versions = ", ".join(s.version for s in list_stages(SEQ2SEQ))
    parser.add_argument(
        "--version", default="v6", help=f"stage to run ({versions}) or 'all' (default v6)"
    )
    parser.add_argument("--task", default="all", help=f"{', '.join(TASKS)} or 'all' (default all)")
    cli.add_seed(parser)
    cli.add_num_seeds(parser, 1, "each stage on each task")
    parser.add_argument(
        "--steps", type=cli.positive_int, default=None,
        help=f"training steps per run (default {runner.TRAINING.steps}, "
        f"{runner.QUICK_TRAINING.steps} with --quick)",
    )  # fmt: skip
    cli.add_device(parser)
    parser.add_argument(
        "--out", type=Path, default=None,
        help=f"default {DEFAULT_ROOT / NAME}/ ({DEFAULT_ROOT / NAME}/quick/ with --quick)",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true",
        help="a short run for trying the command; written to its own folder and marked "
        "quick in results.json and the figures",
    )  # fmt: skip
    parser.add_argument(
        "--label-smoothing", type=smoothing, default=runner.TRAINING.label_smoothing,
        help=f"share of each target spread over the vocabulary (default "
        f"{runner.TRAINING.label_smoothing}, the paper's)",
    )  # fmt: skip
    parser.add_argument(
        "--schedule", default=runner.TRAINING.schedule,
        help=f"learning-rate schedule: {' or '.join(SCHEDULES)} (default "
        f"{runner.TRAINING.schedule}: linear warmup, then 1/sqrt(step), the paper's)",
    )  # fmt: skip
    return parser


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, torch.device]:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.versions, _ = choose_versions(parser, args.version, SEQ2SEQ)
    if args.task != "all" and args.task not in TASKS:
        parser.error(f"--task: expected one of {', '.join(TASKS)} or all, got {args.task!r}")
    args.tasks = list(TASKS) if args.task == "all" else [args.task]
    if args.schedule not in SCHEDULES:
        parser.error(f"--schedule: expected {' or '.join(SCHEDULES)}, got {args.schedule!r}")
    args.seeds = cli.seeds_of(args, parser)
    if args.steps is not None and args.steps < 2:
        parser.error(f"--steps: expected at least 2 (one warmup step, one more), got {args.steps}")
    args.out = args.out or cli.run_folder(DEFAULT_ROOT, NAME, args.quick)
    problem = cli.check_writable(args.out)
    if problem:
        parser.error(problem)
    device = cli.resolve_device(args.device, parser)
    cli.prepare_out(args.out, parser)
    args.lock = cli.RunLock(args.out, parser)
    return args, device


def train_config(args: argparse.Namespace):
    base = runner.QUICK_TRAINING if args.quick else runner.TRAINING
    config = replace(base, label_smoothing=args.label_smoothing, schedule=args.schedule)
    if args.steps is not None:
        warmup = min(base.warmup_steps, max(1, args.steps // 5))
        config = replace(config, steps=args.steps, warmup_steps=warmup,
                         eval_interval=min(base.eval_interval, args.steps))  # fmt: skip
    return config


def run_version(args, version: str, config, device: torch.device) -> tuple[dict, dict]:
    """Every task and seed on one stage: (results, what to draw)."""
    size = runner.QUICK_SIZE if args.quick else runner.SIZE
    examples = runner.QUICK_EVAL_EXAMPLES if args.quick else runner.EVAL_EXAMPLES
    beams = min(examples, runner.BEAM_EXAMPLES)
    seeds = args.seeds
    results = {"experiment": NAME, "version": version, "seeds": seeds, "size": size,
               "max_len": runner.MAX_LEN, "training": config.to_dict(), "tasks": {}}  # fmt: skip
    if args.quick:
        results["quick"] = True
    drawn = {"losses": {}, "cross": {}}
    for name in args.tasks:
        runs = [
            runner.run_task(
                TASKS[name],
                version,
                seed,
                config,
                device,
                size=size,
                eval_examples=examples,
                beam_examples=beams,
            )  # fmt: skip
            for seed in seeds
        ]
        results["tasks"][name] = {
            "runs": [r.result for r in runs],
            "summary": report.summarise([r.result for r in runs]),
        }
        drawn["losses"][name] = [r.losses for r in runs]
        if runs[0].cross_maps is not None:
            drawn["cross"][name] = (runs[0].cross_maps, runs[0].cross_example)
        print(summary_line(version, name, results["tasks"][name]), flush=True)
    return results, drawn


def summary_line(version: str, task: str, entry: dict) -> str:
    s = entry["summary"]
    runs = entry["runs"]
    return (
        f"{version} {task:<8} {runs[0]['parameters']:>8,} params  exact match: held-out "
        f"{100 * s['heldout_exact_match']['mean']:5.1f}%, longer "
        f"{100 * s['longer_exact_match']['mean']:5.1f}%  token accuracy: held-out "
        f"{100 * s['heldout_token_accuracy']['mean']:5.1f}%, longer "
        f"{100 * s['longer_token_accuracy']['mean']:5.1f}%"
    )


def save_version(out: Path, results: dict, drawn: dict, quick: bool) -> Path:
    folder = out / results["version"]
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "results.json", results)
    note = " [quick run]" if quick else ""
    version = results["version"]
    report.loss_figure(folder / "loss_curves.png", drawn["losses"],
                       f"{version}: training loss per task and seed{note}")  # fmt: skip
    for task, (maps, example) in drawn["cross"].items():
        report.cross_attention_figure(
            folder / f"cross_attention_{task}.png", maps, example,
            f"{version} cross-attention on a held-out {task} example (seed "
            f"{results['seeds'][0]}){note}",
        )  # fmt: skip
        report.cross_attention_page(
            folder / f"attention_{task}.html", maps, example,
            f"{version} cross-attention on a held-out {task} example (seed "
            f"{results['seeds'][0]}){note}",
        )  # fmt: skip
    return folder / "results.json"


def save_comparison(out: Path, per_version: dict, seeds: list[int], quick: bool) -> None:
    compared = report.comparison(per_version)
    payload = {"experiment": NAME, "seeds": seeds, "tasks": compared}
    if quick:
        payload["quick"] = True
    write_json(out / "comparison.json", payload)
    write_bytes(out / "comparison.md", report.table(compared, seeds, quick).encode())
    figure = report.comparison_figure(compared, seeds, quick)
    write_figure(out / "comparison.png", figure)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args, device = parse(argv)
    cli.make_deterministic(device)
    config = train_config(args)
    start = time.perf_counter()
    seeds = f"{args.seeds[0]}..{args.seeds[-1]}"
    print(f"{NAME}: {', '.join(args.tasks)} on {', '.join(args.versions)}; seeds {seeds}, "
          f"{config.steps} steps, {device}")  # fmt: skip
    try:
        per_version = {}
        for version in args.versions:
            results, drawn = run_version(args, version, config, device)
            path = save_version(args.out, results, drawn, args.quick)
            per_version[version] = results
            print(f"  wrote {path} and its figures", file=sys.stderr)
        if len(per_version) > 1:
            save_comparison(args.out, per_version, args.seeds, args.quick)
            print(report.table(report.comparison(per_version), args.seeds, args.quick))
    finally:
        args.lock.release()
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0
