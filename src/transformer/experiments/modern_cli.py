"""The ablation of v7's four switches, as a command (see ``modern_ablation``).

    python experiments/modern_ablation.py --seed 0 --num-seeds 3 --steps 600
        --device auto|cpu|cuda --out results/modern_ablation/ [--quick]

Writes to ``--out``: ``results.json`` (per variant: parameters, KV bytes per token, val
bits/char for every seed and their spread, length generalisation), ``throughput.json``
(tokens/s, timed side by side; timings differ from run to run, so they are kept out of
``results.json``, which the same seed on the same device reproduces), ``ablation.md`` and
two figures. ``--quick`` is a tiny run for tests, written by default to
``results/modern_ablation/quick/`` so that it never replaces a full run.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from transformer import cli
from transformer.contract import get_stage
from transformer.experiments import modern_ablation as ablation
from transformer.experiments import modern_report as report
from transformer.experiments.lm_report import LN2
from transformer.experiments.runner import spread
from transformer.io import write_bytes, write_figure, write_json
from transformer.lm import load_corpus, unigram_baseline

NAME = "modern_ablation"
DEFAULT_OUT = Path("results") / NAME


def build_parser() -> cli.OneLineParser:
    parser = cli.OneLineParser(
        prog=f"{NAME}.py",
        description="Train v5 and v7 with one switch at a time (RoPE, RMSNorm, SwiGLU, "
        "grouped-query attention), then all four, on the standard library's bytes; report val "
        "bits/char over seeds, tokens/s, KV cache bytes per token and length generalisation.",
    )
    cli.add_seed(parser)
    cli.add_num_seeds(parser, 3, "each variant")
    parser.add_argument(
        "--steps", type=cli.positive_int, default=None,
        help=f"training steps per run (default {ablation.TRAINING.steps})",
    )  # fmt: skip
    cli.add_device(parser)
    parser.add_argument(
        "--out", type=Path, default=None,
        help=f"default {DEFAULT_OUT}/ ({DEFAULT_OUT}/quick/ with --quick)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a tiny run, for tests")
    return parser


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, torch.device]:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.seeds = cli.seeds_of(args, parser)
    if args.out is None:
        args.out = cli.run_folder(DEFAULT_OUT.parent, NAME, args.quick)
    problem = cli.check_writable(args.out)
    if problem:
        parser.error(problem)
    device = cli.resolve_device(args.device, parser)
    cli.prepare_out(args.out, parser)
    args.lock = cli.RunLock(args.out, parser)
    return args, device


def run(args: argparse.Namespace, device: torch.device) -> tuple[dict, dict]:
    """Train and measure every variant; returns (results, throughput)."""
    size = ablation.QUICK_SIZE if args.quick else ablation.SIZE
    block = ablation.QUICK_BLOCK if args.quick else ablation.BLOCK
    training = ablation.QUICK_TRAINING if args.quick else ablation.TRAINING
    if args.steps is not None:
        warmup = min(training.warmup_steps, args.steps // 10)
        training = replace(training, steps=args.steps, warmup_steps=warmup,
                           eval_interval=args.steps)  # fmt: skip
    corpus = load_corpus(ablation.QUICK_CORPUS if args.quick else ablation.CORPUS)
    seeds = args.seeds
    variants, timed = {}, {}
    for variant in ablation.variants(size["num_heads"]):
        config = ablation.model_config(variant, size, block)
        stage = get_stage(variant.version)
        architecture = stage.architecture(config)
        runs = [
            ablation.train_variant(variant, seed, corpus, size, training, block, device)
            for seed in seeds
        ]
        torch.manual_seed(args.seed)
        timed[variant.name] = stage.build_model(config).to(device)
        variants[variant.name] = {
            "version": variant.version,
            "changes": variant.changes,
            "model": architecture,
            "num_parameters": sum(p.numel() for p in timed[variant.name].parameters()),
            "kv_bytes_per_token": ablation.kv_bytes_per_token(architecture),
            "runs": runs,
        }
        print(f"{variant.name}: " + ", ".join(
            f"{r['val_bits_per_char']:.3f}" for r in runs) + " val bits/char")  # fmt: skip
    summarise(variants)
    speed = ablation.tokens_per_second(timed, corpus.train, block, training.batch_size)
    unigram = unigram_baseline(corpus.train, corpus.val)
    results = {
        "experiment": NAME,
        "quick": args.quick,
        "seeds": seeds,
        "device": device.type,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "corpus": corpus.summary(),
        "size": size,
        "block_size": block,
        "evaluated_length": ablation.LENGTH_FACTOR * block,
        "training": training.to_dict(),
        "unigram_bits_per_char": ablation.rounded(unigram["nats"] / LN2),
        "variants": variants,
    }
    throughput = {
        "note": "timed side by side in one run, round-robin; differs from run to run",
        "rounds": ablation.TIMING_ROUNDS,
        "steps_per_round": ablation.TIMED_STEPS,
        "device": device.type,
        "threads": torch.get_num_threads(),
        "batch_size": training.batch_size,
        "block_size": block,
        "tokens_per_second": {name: round(value, 1) for name, value in speed.items()},
        "relative_to_v5": {name: round(value / speed["v5"], 3) for name, value in speed.items()},
    }
    return results, throughput


def summarise(variants: dict) -> None:
    """Add each variant's spread over seeds and its difference from v5, in place."""
    for v in variants.values():
        v["val_bits_per_char"] = spread([r["val_bits_per_char"] for r in v["runs"]])
        lengths = [r["length"] for r in v["runs"]]
        if all(length["runs_past_context"] for length in lengths):
            ranges = lengths[0]["bits_per_char"]
            v["length"] = {"runs_past_context": True, "bits_per_char": {
                name: spread([length["bits_per_char"][name] for length in lengths])
                for name in ranges}}  # fmt: skip
        else:
            v["length"] = {"runs_past_context": False, "reason": lengths[0].get("reason")}
    base = variants["v5"]["val_bits_per_char"]
    for v in variants.values():
        bits = v["val_bits_per_char"]
        v["difference_from_v5"] = ablation.rounded(bits["mean"] - base["mean"])
        v["separated_from_v5"] = bits["max"] < base["min"] or bits["min"] > base["max"]


def save(results: dict, throughput: dict, out: Path) -> Path:
    write_json(out / "results.json", results)
    write_json(out / "throughput.json", throughput)
    heading = "# The four switches, one at a time\n\n"
    if results["quick"]:
        heading += "A quick run (--quick): too short to mean anything.\n\n"
    write_bytes(out / "ablation.md", (heading + report.table(results, throughput)).encode())
    write_figure(out / "ablation.png", report.ablation_figure(results, throughput))
    write_figure(out / "length_generalisation.png", report.length_figure(results))
    return out / "results.json"


def main(argv: list[str] | None = None) -> int:
    args, device = parse(argv)
    cli.make_deterministic(device)
    start = time.perf_counter()
    try:
        results, throughput = run(args, device)
        path = save(results, throughput, args.out)
    finally:
        args.lock.release()
    print(report.summary(results, throughput))
    print(f"wrote {path}, throughput.json, ablation.md and the figures in "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    return 0
