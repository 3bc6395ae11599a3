"""The numbers tutorial 09 quotes: the language model trained by two processes under torchrun
against one process that accumulates two micro-batches, and against one that does not.

Three runs of ``experiments/language_model.py`` at its default model for ``STEPS`` steps, on the
CPU, with one thread per process (each run in a fresh process, as a learner runs them):

* ``two``: ``torchrun --standalone --nproc_per_node=2`` (DDP over gloo), batch 16;
* ``accumulated``: one process, ``--grad-accum 2``;
* ``whole``: one process, the whole batch at once.

Recorded: the largest difference of any weight and of any step's training loss between the
runs, the loss difference at a few steps (float32 rounding grows as training goes on), and
each run's validation bits per character.

    poetry run python -m transformer_teaching.data_parallel OUT_DIR
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from safetensors.torch import load_file

from transformer.io import write_json
from transformer.lm.checkpoint import read_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "language_model.py"
STEPS = 100
CHECKPOINT = "checkpoint.safetensors"
SHOWN_STEPS = (1, 10, 20, 50, 100)  # where the loss differences are recorded
SETTINGS = ["--seed", "0", "--device", "cpu", "--steps", str(STEPS)]
RUNS = {"two": (2, []), "accumulated": (1, ["--grad-accum", "2"]), "whole": (1, [])}


def train(out: Path, processes: int, flags: list[str]) -> None:
    command = [sys.executable, str(SCRIPT), *SETTINGS, *flags, "--out", str(out)]
    if processes > 1:
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        command = [sys.executable, *launcher, *command[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    subprocess.run(command, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)


def read(out: Path) -> tuple[dict, dict, list[float]]:
    """The results, the weights and the unrounded per-step training losses."""
    results = json.loads((out / "results.json").read_text())
    weights = load_file(out / CHECKPOINT)
    curve = read_checkpoint(out / CHECKPOINT).history["train_loss"]
    return results, {k: v for k, v in weights.items() if k.startswith("model")}, curve


def differences(a: tuple[dict, dict, list], b: tuple[dict, dict, list]) -> dict:
    (_, weights_a, curve_a), (_, weights_b, curve_b) = a, b
    return {
        "max_abs_weight_difference": max(
            (weights_a[k] - weights_b[k]).abs().max().item() for k in weights_a
        ),
        "train_loss_difference_at_step": {
            str(step): abs(curve_a[step - 1] - curve_b[step - 1]) for step in SHOWN_STEPS
        },
        "max_abs_train_loss_difference": max(
            abs(x - y) for x, y in zip(curve_a, curve_b, strict=True)
        ),
    }


def measure() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        runs = {}
        for name, (processes, flags) in RUNS.items():
            train(Path(folder) / name, processes, flags)
            runs[name] = read(Path(folder) / name)
    return {
        "steps": runs["two"][0]["steps_done"],
        "batch_size": runs["two"][0]["training"]["batch_size"],
        "parameters": runs["two"][0]["num_parameters"],
        "val_bits_per_char": {name: r[0]["final"]["val_bits_per_char"] for name, r in runs.items()},
        "two_vs_accumulated": differences(runs["two"], runs["accumulated"]),
        "accumulated_vs_whole": differences(runs["accumulated"], runs["whole"]),
        "two_vs_whole": differences(runs["two"], runs["whole"]),
    }


def save(out: Path) -> Path:
    path = out / "equality.json"
    write_json(path, measure())
    return path


if __name__ == "__main__":
    print(f"wrote {save(Path(sys.argv[1]))}")
