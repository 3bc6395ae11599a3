"""What the heads learned, over every trained stage, and when the induction head forms.

    python experiments/heads.py [--results results/] [--out <results>/heads/]
        [--dynamics-version v4] [--seed 0] [--num-seeds 3] [--every 10] [--steps 1500]
        [--device auto] [--no-dynamics]

Reads the head scores and ablations every task run wrote
(``<results>/<task>/<version>/seed<S>/results.json``) and writes ``summary.json`` and
``summary.md`` (``transformer.experiments.heads_summary``). Then trains
``--dynamics-version`` on the pattern task from each seed, measuring every ``--every`` steps
(``transformer.experiments.heads_dynamics``), and writes ``dynamics.json`` and
``dynamics.png``. Bad flags exit with status 2, a one-line message and nothing written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from transformer import cli
from transformer.contract import NEXT_TOKEN, list_stages
from transformer.experiments import compare, heads_dynamics, heads_summary
from transformer.experiments.runner import TASK_TRAINING
from transformer.io import write_bytes, write_json


def build_parser() -> cli.OneLineParser:
    parser = cli.OneLineParser(prog="heads.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results", type=Path, default=Path("results"),
        help="where the task experiments wrote their results (default results/)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="default <results>/heads/")
    versions = [s.version for s in list_stages(NEXT_TOKEN)]
    parser.add_argument(
        "--dynamics-version", default="v4", choices=versions, metavar="VERSION",
        help=f"the stage trained for the dynamics ({', '.join(versions)}; default v4)",
    )  # fmt: skip
    cli.add_seed(parser)
    cli.add_num_seeds(parser, 3, "the dynamics' stage")
    parser.add_argument(
        "--every", type=cli.positive_int, default=10, help="steps between measurements (10)"
    )
    parser.add_argument(
        "--steps", type=cli.positive_int, default=TASK_TRAINING.steps,
        help=f"training steps of the dynamics (default {TASK_TRAINING.steps})",
    )  # fmt: skip
    cli.add_device(parser)
    parser.add_argument("--no-dynamics", action="store_true", help="only the summary")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    seeds = cli.seeds_of(args, parser)
    if args.every > args.steps:
        parser.error(f"--every: expected at most --steps={args.steps}, got {args.every}")
    device = cli.resolve_device(args.device, parser)
    collected = compare.collect(args.results)
    for task, stages in collected.items():
        for version, runs in stages.items():
            for seed, run in runs.items():
                if "heads" not in run["trained"]:
                    parser.error(f"--results: {task}/{version}/seed{seed} has no head scores "
                                 "(written before they existed); rerun its experiment")  # fmt: skip
    summary = heads_summary.summarise(collected)
    if not any(summary.values()):
        parser.error(f"--results: no task runs under {args.results} (run experiments/*.py first)")
    out = args.out or args.results / "heads"
    cli.prepare_out(out, parser)
    write_json(out / "summary.json", summary)
    write_bytes(out / "summary.md", heads_summary.markdown(summary).encode())
    print(heads_summary.markdown(summary))
    if args.no_dynamics:
        return 0
    cli.make_deterministic(device)
    version = args.dynamics_version
    curves = []
    for seed in seeds:
        curves.append(heads_dynamics.run(version, seed, args.every, device, args.steps))
        last = curves[-1]["points"][-1]
        accuracy = 100 * last["heldout_accuracy"]
        print(f"dynamics {version} seed {seed}: induction {last['induction']:.2f} at step "
              f"{last['step']}, held-out accuracy {accuracy:.1f}%")  # fmt: skip
    payload = {"task": heads_dynamics.TASK, "version": version, "every": args.every,
               "steps": args.steps, "device": device.type, "curves": curves}  # fmt: skip
    heads_dynamics.figure(out / "dynamics.png", version, curves)
    write_json(out / "dynamics.json", payload)
    print(f"wrote {out / 'summary.json'}, summary.md, dynamics.json and dynamics.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
