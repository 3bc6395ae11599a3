"""The command line every experiment script shares.

    python experiments/fibonacci.py --version v1|v2|...|all --seed 0 --steps 1500
        --device auto|cpu|cuda --out results/fibonacci/ [--quick]

Writes ``<out>/<version>/results.json`` and three PNGs per stage; with ``--version all``,
also ``<out>/comparison.json``. Bad flags exit with status 2, a one-line message and nothing
written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from transformer.contract import list_stages
from transformer.experiments.atomic import write_json
from transformer.experiments.runner import StageRun, run_stage, save_stage
from transformer.experiments.tasks import get_task
from transformer.experiments.training import TrainConfig

DEFAULT_STEPS = 1500
QUICK = TrainConfig(steps=20, batch_size=16, eval_sequences=64)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag prints one line (no usage block) and exits with status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(experiment: str) -> OneLineParser:
    task = get_task(experiment)
    parser = OneLineParser(
        prog=f"{experiment}.py",
        description=f"The {experiment} experiment: {task.description}. Probes the untrained "
        "stage, trains it, and reports held-out accuracy and where its attention goes.",
    )
    versions = ", ".join(s.version for s in list_stages())
    parser.add_argument("--version", default="v1", help=f"stage to run ({versions}) or 'all'")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--steps", type=int, default=None, help=f"training steps (default {DEFAULT_STEPS})"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--out", type=Path, default=None, help=f"default results/{experiment}/")
    parser.add_argument("--quick", action="store_true", help="a few seconds, for tests")
    return parser


def check_writable(out: Path, flag: str = "--out") -> str | None:
    """Why ``out`` (given as ``flag``) cannot be written, or None. Creates nothing."""
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{flag}: expected a writable directory, but {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{flag}: expected a writable directory, but {existing} is not writable"
    return None


def resolve_device(name: str, parser: OneLineParser) -> torch.device:
    if name not in ("auto", "cpu", "cuda"):
        parser.error(f"--device: expected auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        parser.error("--device: cuda was asked for, but torch sees no CUDA device here")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def parse(experiment: str, argv: list[str] | None) -> tuple[argparse.Namespace, torch.device]:
    parser = build_parser(experiment)
    args = parser.parse_args(argv)
    known = [s.version for s in list_stages()]
    if args.version != "all" and args.version not in known:
        parser.error(
            f"--version: unknown stage {args.version!r}; known stages: {', '.join(known)}, all"
        )
    if args.steps is not None and args.steps <= 0:
        parser.error(f"--steps: expected a positive number of steps, got {args.steps}")
    args.out = args.out or Path("results") / experiment
    problem = check_writable(args.out)
    if problem:
        parser.error(problem)
    device = resolve_device(args.device, parser)
    return args, device


def train_config(args: argparse.Namespace) -> TrainConfig:
    base = QUICK if args.quick else TrainConfig(steps=DEFAULT_STEPS)
    steps = args.steps if args.steps is not None else base.steps
    return TrainConfig(steps, base.batch_size, base.learning_rate, base.eval_sequences)


def summary_row(run: StageRun, seconds: float) -> str:
    r = run.result
    trained, probe = r["trained"], r["probe"]
    return (
        f"{r['version']:<8}{100 * trained['accuracy']:>9.1f}%{100 * trained['chance']:>8.1f}%"
        f"{100 * trained['seen_token_guess']:>8.1f}%"
        f"{trained['final_train_loss']:>12.3f}{trained['heldout_loss']:>11.3f}"
        f"{trained['best_head_attention_mass']:>10.2f}{trained['uniform_attention_mass']:>9.2f}"
        f"{probe['similar_weight']:>9.3f}{probe['dissimilar_weight']:>9.3f}{seconds:>7.1f}s"
    )


def probe_line(run: StageRun) -> str:
    """The seed's second probe figure: the last query's weights across positions."""
    weights = run.result["probe"]["last_query_weights"]
    shown = " ".join(f"{w:.2f}" for w in weights)
    return (
        f"{run.result['version']} untrained, last query's weights across positions "
        f"(layer 0, mean of heads): {shown}  (range {min(weights):.2f}-{max(weights):.2f})"
    )


HEADER = (
    f"{'stage':<8}{'accuracy':>10}{'chance':>9}{'guess':>9}{'train loss':>12}{'held loss':>11}"
    f"{'mass@need':>10}{'uniform':>9}{'sim (0)':>9}{'dis (0)':>9}{'time':>8}"
)
LEGEND = (
    "accuracy: held-out, at scored positions. guess: accuracy of guessing among the tokens "
    "seen so far, a baseline that needs no order. mass@need: the best head's attention on the "
    "positions the answer needs (trained); uniform: the same for evenly spread attention. "
    "sim/dis (0): untrained probe, mean weight on keys with the same / another token."
)


def make_deterministic(device: torch.device) -> None:
    """Same seed, same device, same results: on CUDA, fix cuBLAS and pick deterministic
    kernels. The CPU ops used here are deterministic already."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # fixed cuBLAS workspace
        torch.use_deterministic_algorithms(True, warn_only=True)


def main(experiment: str, argv: list[str] | None = None) -> int:
    args, device = parse(experiment, argv)
    task = get_task(experiment)
    versions = [s.version for s in list_stages()] if args.version == "all" else [args.version]
    config = train_config(args)
    make_deterministic(device)
    print(f"{experiment}: {task.description}; seed {args.seed}, {config.steps} steps, {device}")
    rows, probes, comparison = [], [], {}
    for version in versions:
        start = time.perf_counter()
        run = run_stage(task, version, args.seed, config, device)
        path = save_stage(run, args.out / version)
        rows.append(summary_row(run, time.perf_counter() - start))
        probes.append(probe_line(run))
        comparison[version] = {
            key: run.result["trained"][key]
            for key in (
                "accuracy",
                "chance",
                "seen_token_guess",
                "final_train_loss",
                "heldout_loss",
                "best_head_attention_mass",
                "uniform_attention_mass",
            )
        }
        print(f"  wrote {path} and its figures", file=sys.stderr)
    print(HEADER, *rows, LEGEND, "", *probes, sep="\n")
    if args.version == "all":
        path = args.out / "comparison.json"
        write_json(
            path,
            {
                "experiment": experiment,
                "seed": args.seed,
                "steps": config.steps,
                "device": device.type,
                "stages": comparison,
            },
        )
        print(f"comparison written to {path}")
    return 0
