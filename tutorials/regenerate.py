"""Regenerate every result and figure the tutorials quote, then refresh the quoted numbers.

    poetry run python tutorials/regenerate.py

Runs the three experiments on every registered stage (seeds 0-2, default steps, CPU, so the
committed files can be reproduced on any machine), the stage comparison, the heads' summary and
the induction head's training dynamics, the √d_k
measurement, the sinusoidal-encoding figure, v5's language model, the sequence-to-sequence
comparison of v5, v6 and v7 (seeds 0-2), v7's ablation (seeds 0-2),
v7's equalities, the language model under torchrun (its equality with one process and
the throughput benchmark), and tutorial 08's worked example and figures (drawn from the
committed v8 benchmark results, which the benchmarks' own commands rerun), writing to
tutorials/results/. Then rewrites each number marked in
tutorials/*.md from those files. Roughly 65 minutes on two idle CPU cores.
"""

import subprocess
import sys
from pathlib import Path

from transformer.experiments import (
    cli,
    compare,
    heads_cli,
    language_model,
    modern_cli,
    seq2seq_cli,
)
from transformer.experiments.tasks import TASKS
from transformer_teaching import data_parallel, efficient, equivalence, positions, quotes, scaling

TUTORIALS = Path(__file__).resolve().parent
DISTRIBUTED_BENCHMARK = TUTORIALS.parent / "benchmarks" / "distributed.py"
RESULTS = TUTORIALS / "results"
SETTINGS = ["--version", "all", "--seed", "0", "--device", "cpu"]
TASK_SEEDS = 3  # the stage ladder's spread


def regenerate(
    results: Path = RESULTS,
    experiments: tuple[str, ...] = tuple(TASKS),
    with_language_model=True,
    task_seeds: int = TASK_SEEDS,
) -> None:
    """Every result and figure the tutorials use, written under ``results``.

    ``experiments``, ``task_seeds`` (seeds 0 .. task_seeds - 1 of the three experiments)
    and ``with_language_model=False`` leave runs out (the three experiments take about ten
    minutes a seed, v5 trained on the standard library about four, the
    sequence-to-sequence comparison about fifteen, v7's ablation about twelve, the
    torchrun runs about four); the tests use them to keep CI short.
    """
    seeds = ["--num-seeds", str(task_seeds)]
    for experiment in experiments:
        cli.main(experiment, [*SETTINGS, *seeds, "--out", str(results / experiment)])
    compare.main(["--results", str(results), "--out", str(results / "compare")])
    dynamics = [] if with_language_model else ["--no-dynamics"]  # its training: two minutes
    heads_cli.main(["--results", str(results), "--device", "cpu", *dynamics])
    scaling.save(results / "scaling")
    positions.save(results / "positions")
    efficient.save(results / "efficient")  # from the committed v8 benchmark results
    if with_language_model:
        lm = ["--seed", "0", "--device", "cpu", "--out", str(results / "lm"), "--overwrite"]
        language_model.main(lm)
        seq2seq = ["--version", "all", "--num-seeds", "3", "--seed", "0", "--device", "cpu"]
        seq2seq_cli.main([*seq2seq, "--out", str(results / "seq2seq")])
        modern_cli.main(["--seed", "0", "--device", "cpu", "--out", str(results / "modern")])
        data_parallel.save(results / "distributed")
        throughput = results / "distributed" / "throughput.json"
        subprocess.run([sys.executable, DISTRIBUTED_BENCHMARK, "--out", throughput], check=True)
    equivalence.save(results / "modern")


def main() -> int:
    regenerate()
    for tutorial in sorted(TUTORIALS.glob("*.md")):
        text = tutorial.read_text()
        refreshed = quotes.refresh(text, RESULTS)
        if refreshed != text:
            tutorial.write_text(refreshed)
            print(f"refreshed the quoted numbers in {tutorial.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
