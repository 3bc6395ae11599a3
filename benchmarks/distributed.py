"""Training throughput with 1 and N processes (torchrun, DDP), and the time spent in all-reduce.

Each process count runs in fresh processes: one process is the plain single-process path (no
process group, as ``python experiments/language_model.py`` runs), N > 1 is started by
``torchrun --standalone --nproc_per_node=N``. Every process runs the project's own training
step (``transformer.lm.training.train_step``: each rank its slice of the global batch,
gradients all-reduced by ``DistributedDataParallel``) on v5's GPT at the language model's
default sizes, on random bytes (speed does not depend on the data).

Reported per process count: the median step time (the slowest rank's, per step), tokens/s =
global batch x T / that time, and the ratio to one process; for N > 1 also the median time of
one all-reduce of a flat float32 tensor holding as many values as the model has parameters
(what DDP reduces each step, though DDP splits it into buckets and overlaps them with the
backward pass) and its share of the step. On the CPU the cores are shared: by default each of
N processes gets cores / N threads, so the runs use the same cores and differ in how they
split the work.

    poetry run python benchmarks/distributed.py                     # 1 and 2 processes, CPU
    poetry run python benchmarks/distributed.py --device cuda --processes 1 2 4 8
    poetry run python benchmarks/distributed.py --quick             # a short try
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from _cli import out_problem

from transformer.cli import OneLineParser, positive_int, seed
from transformer.contract import ModelConfig, get_stage
from transformer.io import write_json
from transformer.lm import VOCAB_SIZE, TrainConfig, distributed
from transformer.lm.training import build_optimizer, train_step

SCRIPT = Path(__file__).resolve()
RESULTS_DIR = SCRIPT.parent / "results"
QUICK = {"steps": 3, "warmup": 1, "allreduce_repeats": 3}
SIZES = ("num_layers", "num_heads", "d_model")


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="distributed.py", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add(
        "--processes",
        type=positive_int,
        nargs="+",
        default=[1, 2],
        metavar="N",
        help="process counts to measure (default: 1 2)",
    )
    add(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="cpu (gloo) or cuda (NCCL, one GPU per process) (default: cpu)",
    )
    add("--steps", type=positive_int, default=20, help="timed steps (default: 20)")
    add("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    add(
        "--allreduce-repeats", type=positive_int, default=20, help="timed all-reduces (default: 20)"
    )
    add(
        "--batch-size",
        type=positive_int,
        default=TrainConfig().batch_size,
        help="the global batch (default: 16)",
    )
    add("--block-size", type=positive_int, default=128, help="T (default: 128)")
    for name, default in zip(SIZES, (4, 4, 128), strict=True):
        add(
            f"--{name.replace('_', '-')}",
            type=positive_int,
            default=default,
            help=f"default: {default}",
        )
    add(
        "--threads",
        type=positive_int,
        default=None,
        help="torch threads per process (default on the CPU: cores / N, at least 1)",
    )
    add("--seed", type=seed, default=0, help="seed for the weights and the bytes (default: 0)")
    add(
        "--out",
        type=Path,
        default=None,
        help="the JSON file (default: benchmarks/results/distributed.json, or "
        "distributed.quick.json with --quick)",
    )
    add(
        "--quick",
        action="store_true",
        help="a short try: --steps 3 --warmup 1 --allreduce-repeats 3 unless given",
    )
    add("--_worker", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Every flag checked before anything runs; a bad one exits 2 in one line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    if args.quick:  # a flag given explicitly wins, as --steps 5 or --steps=5
        for name, value in QUICK.items():
            flag = f"--{name.replace('_', '-')}"
            if not any(a == flag or a.startswith(f"{flag}=") for a in given):
                setattr(args, name, value)
    if args.warmup < 0:
        parser.error(f"--warmup: expected an integer >= 0, got {args.warmup}")
    for count in args.processes:
        if args.batch_size % count:
            parser.error(f"--batch-size: expected a multiple of every --processes value, got "
                         f"{args.batch_size} for {count} processes")  # fmt: skip
    if args.d_model % args.num_heads:
        parser.error(f"--d-model: expected a multiple of --num-heads={args.num_heads}, got "
                     f"{args.d_model}")  # fmt: skip
    if args.device == "cuda":
        have = torch.cuda.device_count()
        if have < max(args.processes):
            parser.error(f"--processes: expected at most {have} with --device cuda (one GPU "
                         f"per process), got {max(args.processes)}")  # fmt: skip
    if args.out is None:
        args.out = RESULTS_DIR / ("distributed.quick.json" if args.quick else "distributed.json")
    problem = out_problem(args.out)
    if problem:
        parser.error(problem)
    return args


def settings(args: argparse.Namespace) -> dict:
    names = ("device", "steps", "warmup", "allreduce_repeats", "batch_size", "block_size",
             *SIZES, "seed", "quick")  # fmt: skip
    return {name: getattr(args, name) for name in names}


def threads_for(args: argparse.Namespace, processes: int) -> int:
    if args.threads is not None:
        return args.threads
    return max(1, (os.cpu_count() or 1) // processes)


def measure(count: int, args: argparse.Namespace, argv: list[str]) -> dict:
    """Run ``count`` fresh processes and return rank 0's measurement."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "row.json"
        worker = [str(SCRIPT), *argv, "--_worker", str(report)]
        if count == 1:
            command = [sys.executable, *worker]
        else:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       f"--nproc_per_node={count}", *worker]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(threads_for(args, count))}
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"distributed.py: error: the {count}-process run failed:\n{proc.stderr}")
        return json.loads(report.read_text())


def work(args: argparse.Namespace) -> None:
    """One process of a measurement (all of them under torchrun); rank 0 writes the row."""
    world = distributed.world_from_environment()
    device = distributed.join(world, torch.device(args.device))
    torch.set_num_threads(threads_for(args, world.size))
    torch.manual_seed(args.seed)
    config = ModelConfig(
        vocab_size=VOCAB_SIZE, max_len=args.block_size, dropout=0.0,
        **{name: getattr(args, name) for name in SIZES},
    )  # fmt: skip
    model = get_stage("v5").build_model(config).to(device)
    ddp = distributed.wrap(model, world)
    optimizer = build_optimizer(model, TrainConfig())
    generator = torch.Generator().manual_seed(args.seed)
    shape = (args.batch_size, args.block_size + 1)
    tokens = torch.randint(0, VOCAB_SIZE, shape, generator=generator).to(device)  # (B, T+1)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]  # (B, T) each
    steps = []
    for index in range(args.warmup + args.steps):
        synchronize(device)
        start = time.perf_counter()
        train_step(model, optimizer, inputs, targets, 1e-4, 1.0, index, 1, world, ddp)
        synchronize(device)
        steps.append(slowest(time.perf_counter() - start, world, device))
    step_s = statistics.median(steps[args.warmup :])
    parameters = sum(p.numel() for p in model.parameters())
    row = {
        "processes": world.size,
        "threads_per_process": torch.get_num_threads(),
        "step_ms": 1000 * step_s,
        "tokens_per_s": args.batch_size * args.block_size / step_s,
        "parameters": parameters,
        "allreduce_ms": None,
        "allreduce_share": None,
    }
    if world.size > 1:
        flat = torch.zeros(parameters, dtype=torch.float32, device=device)  # (N,)
        reduces = []
        for _ in range(args.allreduce_repeats + 1):  # the first one untimed
            dist.barrier()
            synchronize(device)
            start = time.perf_counter()
            dist.all_reduce(flat)
            synchronize(device)
            reduces.append(slowest(time.perf_counter() - start, world, device))
        row["allreduce_ms"] = 1000 * statistics.median(reduces[1:])
        row["allreduce_share"] = row["allreduce_ms"] / row["step_ms"]
    if world.is_main:
        write_json(args._worker, row)
    if world.size > 1:  # no rank tears the group down while another still uses it
        dist.barrier()
    distributed.stop()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def slowest(seconds: float, world: distributed.World, device: torch.device) -> float:
    """The longest of the ranks' times: a step ends when its slowest rank ends."""
    if world.size == 1:
        return seconds
    value = torch.tensor([seconds], dtype=torch.float64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value.item()


def report(rows: list[dict], payload: dict) -> str:
    lines = [
        f"v5 GPT training step, global batch {payload['settings']['batch_size']} x T "
        f"{payload['settings']['block_size']}, {payload['settings']['device']} "
        f"({payload['machine']['cpu_count']} cores)",
        "| processes | threads each | step ms | tokens/s | vs 1 process | all-reduce ms | "
        "all-reduce share |",
        "| --: | --: | --: | --: | --: | --: | --: |",
    ]
    for row in rows:
        ratio = "-" if row["speedup_vs_1"] is None else f"{row['speedup_vs_1']:.2f}x"
        reduce = "-" if row["allreduce_ms"] is None else f"{row['allreduce_ms']:.2f}"
        share = "-" if row["allreduce_share"] is None else f"{100 * row['allreduce_share']:.0f}%"
        lines.append(f"| {row['processes']} | {row['threads_per_process']} | "
                     f"{row['step_ms']:.1f} | {row['tokens_per_s']:,.0f} | {ratio} | {reduce} | "
                     f"{share} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args._worker is not None:
        work(args)
        return 0
    rows = [measure(count, args, argv) for count in args.processes]
    base = next((r for r in rows if r["processes"] == 1), None)
    for row in rows:
        row["speedup_vs_1"] = None if base is None else row["tokens_per_s"] / base["tokens_per_s"]
    payload = {
        "benchmark": "distributed",
        "settings": settings(args),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name() if args.device == "cuda" else None},
        "rows": rows,
    }  # fmt: skip
    write_json(args.out, payload)
    print(report(rows, payload))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
