"""The language-model experiment: train v5's GPT on Python's own standard library, bytewise.

    python experiments/language_model.py --seed 0 --steps 2000 --device auto|cpu|cuda
        --out results/language_model/ [--resume] [--quick]
        [--n-layer 4 --n-head 4 --n-embd 128 --block-size 128 --batch-size 32]

Writes to ``--out``: ``results.json`` (losses, val bits per character, the unigram
baseline, text samples), ``loss_curves.png``, ``lr_schedule.png`` and
``checkpoint.safetensors`` (saved at every evaluation, so an interrupted run can go on with
``--resume`` and end with the same weights). Bad flags exit with status 2 and one line.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from transformer.experiments import lm_report
from transformer.experiments.cli import (
    OneLineParser,
    check_writable,
    make_deterministic,
    resolve_device,
)
from transformer.v5_gpt import GPT, GPTConfig
from transformer.v5_gpt.checkpoint import CheckpointError
from transformer.v5_gpt.data import VOCAB_SIZE, Corpus, CorpusConfig, load_corpus
from transformer.v5_gpt.training import TrainConfig, train

NAME = "language_model"
CHECKPOINT = "checkpoint.safetensors"
DEFAULT_MODEL = {"n_layer": 4, "n_head": 4, "n_embd": 128}
DEFAULT = TrainConfig()
DEFAULT_CORPUS = CorpusConfig()
QUICK_MODEL = {"n_layer": 2, "n_head": 2, "n_embd": 32}
QUICK = TrainConfig(
    steps=30, batch_size=8, block_size=32, warmup_steps=5, eval_interval=10, eval_batches=2
)
QUICK_CORPUS = CorpusConfig(train_bytes=200_000, val_bytes=20_000)
# No dropout: the default run reads the 2 MB train split about 2.6 times and ends with train
# loss 1.19 vs val 1.29 nats; too little training, not overfitting, is what limits it.
DROPOUT = 0.0


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog=f"{NAME}.py",
        description="Train v5's GPT as a byte-level language model on the Python standard "
        "library's source; report val bits per character against the unigram baseline, "
        "loss curves and samples.",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--steps", type=int, default=None, help=f"training steps (default {DEFAULT.steps})"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument(
        "--out", type=Path, default=Path("results") / NAME, help=f"default results/{NAME}/"
    )
    parser.add_argument("--resume", action="store_true", help=f"continue from <out>/{CHECKPOINT}")
    parser.add_argument("--quick", action="store_true", help="a few seconds, for tests")
    for flag, key in (("--n-layer", "n_layer"), ("--n-head", "n_head"), ("--n-embd", "n_embd")):
        parser.add_argument(flag, type=int, default=None, help=f"default {DEFAULT_MODEL[key]}")
    parser.add_argument(
        "--block-size", type=int, default=None, help=f"default {DEFAULT.block_size}"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help=f"default {DEFAULT.batch_size}"
    )
    return parser


def configs(args: argparse.Namespace) -> tuple[GPTConfig, TrainConfig, CorpusConfig]:
    """The model, training and corpus configs the flags ask for (ValueError if impossible)."""
    model = dict(QUICK_MODEL if args.quick else DEFAULT_MODEL)
    model |= {k: getattr(args, k) for k in model if getattr(args, k) is not None}
    base = QUICK if args.quick else DEFAULT
    overrides = {"steps": args.steps, "block_size": args.block_size, "batch_size": args.batch_size}
    training = replace(base, **{k: v for k, v in overrides.items() if v is not None})
    if training.warmup_steps >= training.steps:  # a short run: warm up for a tenth of it
        training = replace(training, warmup_steps=training.steps // 10)
    gpt = GPTConfig(
        vocab_size=VOCAB_SIZE,
        n_positions=training.block_size,
        embd_pdrop=DROPOUT,
        attn_pdrop=DROPOUT,
        resid_pdrop=DROPOUT,
        **model,
    )
    return gpt, training, QUICK_CORPUS if args.quick else DEFAULT_CORPUS


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, torch.device, tuple]:
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag in ("steps", "n_layer", "n_head", "n_embd", "block_size", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            parser.error(f"--{flag.replace('_', '-')}: expected a positive integer, got {value}")
    try:
        chosen = configs(args)
    except ValueError as error:
        parser.error(str(error))
    problem = check_writable(args.out)
    if problem:
        parser.error(problem)
    if args.resume and not (args.out / CHECKPOINT).is_file():
        parser.error(f"--resume: expected a checkpoint at {args.out / CHECKPOINT}, found none")
    return args, resolve_device(args.device, parser), chosen


def run(
    args: argparse.Namespace, device: torch.device, chosen: tuple, corpus: Corpus
) -> tuple[GPT, dict]:
    """Build, train (or resume), and measure; returns the model and the results dict."""
    gpt_config, train_config, _ = chosen
    torch.manual_seed(args.seed)
    model = GPT(gpt_config).to(device)
    generator = torch.Generator().manual_seed(args.seed)
    result = train(
        model,
        corpus.train,
        corpus.val,
        train_config,
        generator,
        checkpoint_path=args.out / CHECKPOINT,
        resume=args.resume,
        extra={"seed": args.seed, "device": device.type, "corpus": corpus.summary()},
        log=lambda line: tqdm.write(line, file=sys.stderr),
    )
    measured = lm_report.measure(model, corpus, train_config, result, args.seed)
    return model, {
        "experiment": NAME,
        "stage": "v5",
        "seed": args.seed,
        "device": device.type,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "corpus": corpus.summary(),
        "model": gpt_config.to_dict(),
        "num_parameters": model.num_parameters(),
        "training": train_config.to_dict(),
        **measured,
    }


def main(argv: list[str] | None = None) -> int:
    args, device, chosen = parse(argv)
    make_deterministic(device)
    start = time.perf_counter()
    corpus = load_corpus(chosen[2])
    print(
        f"{NAME}: {chosen[1].steps} steps on {corpus.train.numel():,} train bytes "
        f"({len(corpus.train_files)} files), seed {args.seed}, {device}"
    )
    try:
        model, results = run(args, device, chosen, corpus)
    except CheckpointError as error:
        print(f"{NAME}.py: error: {error}", file=sys.stderr)
        return 2
    path = lm_report.save(results, args.out)
    print(lm_report.summary(results))
    print(f"wrote {path} and its figures in {time.perf_counter() - start:.0f} s")
    return 0
