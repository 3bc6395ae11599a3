"""The language-model experiment: train a stage on Python's own standard library, bytewise.

    python experiments/language_model.py --version v5 --seed 0 --steps 2500
        --device auto|cpu|cuda --out results/language_model/ [--resume] [--quick]
        (--quick: a tiny run, written to results/language_model/quick/ unless --out is given)
        [--num-layers 4 --num-heads 4 --d-model 128 --block-size 128 --batch-size 16]
        [--warmup-steps N] [--grad-accum K] [--option KEY=VALUE ...]

Any causal stage registered in the contract can be trained (v5 by default). Started by
``torchrun --nproc_per_node=N``, it trains with DistributedDataParallel (gloo on the CPU,
NCCL on CUDA): each process takes a slice of every batch and only rank 0 writes files. Writes to
``--out``: ``results.json`` (losses, val bits per character, the unigram baseline, text
samples), ``loss_curves.png``, ``lr_schedule.png`` and ``checkpoint.safetensors`` (saved
at every evaluation, so an interrupted run can go on with ``--resume`` and end with the same
weights). Bad flags exit with status 2 and one line, before any work.
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

from transformer import cli
from transformer.contract import (
    NEXT_TOKEN,
    ModelConfig,
    SequenceModel,
    get_stage,
    list_stages,
)
from transformer.experiments import lm_report
from transformer.experiments.cli import choose_versions, parse_options
from transformer.lm import (
    VOCAB_SIZE,
    CheckpointError,
    Corpus,
    CorpusConfig,
    TrainConfig,
    TrainingDiverged,
    distributed,
    load_corpus,
    read_checkpoint,
    sample_batch,
    train,
)
from transformer.lm.distributed import SINGLE, World

NAME = "language_model"
CHECKPOINT = "checkpoint.safetensors"
DEFAULT_VERSION = "v5"
DEFAULT_MODEL = {"num_layers": 4, "num_heads": 4, "d_model": 128}
DEFAULT = TrainConfig()
DEFAULT_BLOCK = 128
DEFAULT_CORPUS = CorpusConfig()
QUICK_MODEL = {"num_layers": 2, "num_heads": 2, "d_model": 32}
QUICK = TrainConfig(steps=30, batch_size=8, warmup_steps=5, eval_interval=10, eval_batches=2)
QUICK_BLOCK = 32
QUICK_CORPUS = CorpusConfig(train_bytes=200_000, val_bytes=20_000)
# No dropout: the default run reads the 2 MB train split about 2.6 times and ends with train
# loss 1.19 vs val 1.29 nats; too little training, not overfitting, is what limits it.
DROPOUT = 0.0
MODEL_FLAGS = (
    ("--num-layers", "--n-layer", "num_layers"),
    ("--num-heads", "--n-head", "num_heads"),
    ("--d-model", "--n-embd", "d_model"),
)


def build_parser() -> cli.OneLineParser:
    parser = cli.OneLineParser(
        prog=f"{NAME}.py",
        description="Train a causal stage (v5's GPT by default) as a byte-level language model "
        "on the Python standard library's source; report val bits per character against the "
        "unigram baseline, loss curves and samples.",
    )
    versions = ", ".join(s.version for s in list_stages(NEXT_TOKEN))
    parser.add_argument(
        "--version", default=DEFAULT_VERSION, help=f"stage ({versions}; default v5)"
    )
    cli.add_seed(parser)
    parser.add_argument(
        "--steps", type=cli.positive_int, default=None, help=f"default {DEFAULT.steps}"
    )
    cli.add_device(parser)
    parser.add_argument(
        "--out", type=Path, default=None,
        help=f"default results/{NAME}/ (results/{NAME}/quick/ with --quick)",
    )  # fmt: skip
    parser.add_argument(
        "--resume", action="store_true",
        help=f"continue from <out>/{CHECKPOINT}, to its own --steps unless --steps N asks "
        "for more (the learning rate then follows the N-step schedule from there)",
    )  # fmt: skip
    parser.add_argument(
        "--overwrite", action="store_true", help=f"start over, replacing <out>/{CHECKPOINT}"
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="a short run for trying the command (a tiny model on 200 kB); written to its own "
        "folder and marked quick in results.json and the figures",
    )  # fmt: skip
    for flag, alias, key in MODEL_FLAGS:
        parser.add_argument(
            flag, alias, dest=key, type=cli.positive_int, default=None,
            help=f"default {DEFAULT_MODEL[key]}",
        )  # fmt: skip
    parser.add_argument(
        "--block-size", type=cli.positive_int, default=None, help=f"default {DEFAULT_BLOCK}"
    )
    parser.add_argument(
        "--batch-size", type=cli.positive_int, default=None, help=f"default {DEFAULT.batch_size}"
    )
    parser.add_argument(
        "--grad-accum", type=cli.positive_int, default=1, metavar="K",
        help="split each batch into K micro-batches whose gradients add up before the update: "
        "the same training with 1/K of the activation memory (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=None,
        help=f"default {DEFAULT.warmup_steps}, or a tenth of --steps when that is shorter",
    )
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="a stage option"
    )
    return parser


def configs(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig, CorpusConfig, int]:
    """The model, training and corpus configs and the block size the flags ask for
    (ValueError if impossible)."""
    defaults = QUICK_MODEL if args.quick else DEFAULT_MODEL
    asked = {k: getattr(args, k) for k in defaults if getattr(args, k) is not None}
    base = QUICK if args.quick else DEFAULT
    steps = args.steps or base.steps
    warmup = args.warmup_steps
    if warmup is None:  # a run shorter than the warmup warms up for a tenth of it
        warmup = base.warmup_steps if base.warmup_steps < steps else steps // 10
    batch = args.batch_size or base.batch_size
    if batch % args.grad_accum:
        raise ValueError(
            f"--grad-accum: expected a divisor of --batch-size={batch} (each batch is split "
            f"into K equal micro-batches), got {args.grad_accum}"
        )
    training = replace(
        base, steps=steps, batch_size=batch, warmup_steps=warmup, grad_accum=args.grad_accum
    )
    block = args.block_size or (QUICK_BLOCK if args.quick else DEFAULT_BLOCK)
    stage = get_stage(args.version)
    wanted = {"max_len": block, "dropout": DROPOUT, **defaults}  # each stage takes what it has
    taken = {k: v for k, v in wanted.items() if stage.accepts(k, v)} | asked
    model = ModelConfig(vocab_size=VOCAB_SIZE, options=args.options, **taken)
    if not stage.resolve(model).causal:
        raise ValueError(
            "causal: expected True to train a language model (each byte predicted from the "
            "ones before it only), got False"
        )
    return model, training, QUICK_CORPUS if args.quick else DEFAULT_CORPUS, block


def resumed_settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int | None:
    """With ``--resume``, read the checkpoint whole and check it before any work (one line
    and exit 2 if it is damaged); unless given, ``--steps`` and ``--warmup-steps`` are the
    checkpoint's. Returns the checkpoint's step (None without ``--resume``)."""
    checkpoint = args.out / CHECKPOINT
    if not args.resume or not checkpoint.is_file():
        return None
    try:
        saved = read_checkpoint(checkpoint)
    except CheckpointError as error:
        parser.error(f"--resume: {error}")
    trained = saved.train_config if isinstance(saved.train_config, dict) else {}
    for flag, key in (("steps", "steps"), ("warmup_steps", "warmup_steps")):
        if getattr(args, flag) is None and isinstance(trained.get(key), int):
            setattr(args, flag, trained[key])
    return saved.step


def parse(
    argv: list[str] | None, world: World = SINGLE
) -> tuple[argparse.Namespace, torch.device, tuple]:
    """Check every flag before any work; only rank 0 creates ``--out`` and locks it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    choose_versions(parser, args.version, NEXT_TOKEN, allow_all=False)
    args.options = parse_options(args.option, parser)
    if args.out is None:  # a quick run never replaces a full one
        args.out = cli.run_folder(Path("results"), NAME, args.quick)
    if args.resume and args.overwrite:
        parser.error("--overwrite: expected either --resume or --overwrite, got both")
    args.saved_step = resumed_settings(args, parser)
    try:
        chosen = configs(args)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    if args.saved_step is not None and chosen[1].steps < args.saved_step:
        parser.error(
            f"--steps: expected at least {args.saved_step}, the step of the checkpoint in "
            f"{args.out} (a run is extended, never cut short), got {chosen[1].steps}"
        )
    per_step = world.size * args.grad_accum
    if world.size > 1 and chosen[1].batch_size % per_step:
        parser.error(
            f"--batch-size: expected a multiple of processes x --grad-accum = {world.size} x "
            f"{args.grad_accum} (each process takes an equal slice), got {chosen[1].batch_size}"
        )
    problem = cli.check_writable(args.out)
    if problem:
        parser.error(problem)
    checkpoint = args.out / CHECKPOINT
    if args.resume and not checkpoint.is_file():
        parser.error(f"--resume: expected a checkpoint at {checkpoint}, found none")
    if checkpoint.exists() and not (args.resume or args.overwrite):
        parser.error(
            f"--out: {checkpoint} exists; pass --resume to continue that run or --overwrite "
            f"to start over"
        )
    device = cli.resolve_device(args.device, parser)
    args.corpus = load_corpus(chosen[2])
    val_bytes = args.corpus.val.numel()
    if val_bytes < chosen[3] + 1:
        parser.error(
            f"--block-size: expected at most {val_bytes - 1} (the validation split has "
            f"{val_bytes} bytes), got {chosen[3]}"
        )
    args.lock = None
    if world.is_main:  # the other ranks write nothing
        cli.prepare_out(args.out, parser)
        args.lock = cli.RunLock(args.out, parser)
    return args, device, chosen


def run(
    args: argparse.Namespace,
    device: torch.device,
    chosen: tuple,
    corpus: Corpus,
    world: World = SINGLE,
) -> tuple[SequenceModel, dict | None]:
    """Build, train (or resume), and measure; returns the model and the results dict (None
    on ranks other than 0, which only train)."""
    model_config, train_config, _, block = chosen
    stage = get_stage(args.version)
    torch.manual_seed(args.seed)
    model = stage.build_model(model_config).to(device)
    generator = torch.Generator().manual_seed(args.seed)

    def windows(data: torch.Tensor):
        return lambda n, g: sample_batch(data, n, block, g)  # (n, block), (n, block)

    result = train(
        model,
        windows(corpus.train),
        {"train": windows(corpus.train), "val": windows(corpus.val)},
        train_config,
        generator,
        checkpoint_path=args.out / CHECKPOINT,
        resume=args.resume,
        extra={
            "version": args.version,
            "seed": args.seed,
            "device": device.type,
            "block_size": block,
            "corpus": corpus.summary(),
        },
        log=lambda line: tqdm.write(line, file=sys.stderr),
        label=f"train {args.version} language model",
        world=world,
    )
    if not world.is_main:
        return model, None
    measured = lm_report.measure(model, corpus, block, train_config, result, args.seed)
    return model, {
        "experiment": NAME,
        "version": args.version,
        "stage_idea": stage.idea,
        "seed": args.seed,
        "device": device.type,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "corpus": corpus.summary(),
        "model": stage.architecture(model_config),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "training": train_config.to_dict() | {"block_size": block},
        **measured,
    } | ({"quick": True} if args.quick else {})


def main(argv: list[str] | None = None) -> int:
    world = distributed.world_from_environment()
    args, device, chosen = parse(argv, world)
    try:
        device = distributed.join(world, device)
        cli.make_deterministic(device)
        return train_and_report(args, device, chosen, world)
    finally:
        if args.lock is not None:
            args.lock.release()
        distributed.stop()


def train_and_report(args, device: torch.device, chosen: tuple, world: World) -> int:
    start = time.perf_counter()
    corpus = args.corpus
    if world.is_main and args.saved_step == chosen[1].steps:
        print(
            f"{NAME}: the run in {args.out} finished at step {args.saved_step}; nothing to "
            f"train (pass --steps N with N > {args.saved_step} to train on), measuring it again"
        )
    if world.is_main:
        ranks = f", {world.size} processes" if world.size > 1 else ""
        print(
            f"{NAME}: {args.version}, {chosen[1].steps} steps on {corpus.train.numel():,} train "
            f"bytes ({len(corpus.train_files)} files), seed {args.seed}, {device}{ranks}"
        )
    try:
        model, results = run(args, device, chosen, corpus, world)
        if results is None:
            return 0
        path = lm_report.save(results, args.out)
    except (CheckpointError, TrainingDiverged) as error:
        print(f"{NAME}.py: error: {error}", file=sys.stderr)
        return 2
    print(lm_report.summary(results))
    print(f"wrote {path} and its figures in {time.perf_counter() - start:.0f} s")
    return 0
