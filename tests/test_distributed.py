"""torchrun with two CPU processes (gloo) is the same computation as one process that
accumulates two micro-batches: the same loss curve and the same weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from transformer.lm.distributed import World

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "language_model.py"
TINY_RUN = ["--quick", "--steps", "6", "--device", "cpu", "--seed", "1"]
# every rank takes rank 0's slice: the sharding bug the equality must catch
SAME_SLICE = """
import sys
from transformer.lm.distributed import World
World.shard = lambda self, batch: batch[: batch.shape[0] // self.size]
from transformer.experiments.language_model import main
sys.exit(main(sys.argv[1:]))
"""


def launch(args: list[str], processes: int, script: Path = SCRIPT):
    command = [sys.executable, str(script), *args]
    if processes > 1:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",  # a free port
            f"--nproc_per_node={processes}", str(script), *args,
        ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


def curve_and_weights(out: Path) -> tuple[list[float], dict]:
    results = json.loads((out / "results.json").read_text())
    weights = load_file(out / "checkpoint.safetensors")
    return results["curves"]["train_loss"]["values"], {
        k: v for k, v in weights.items() if k.startswith("model")
    }


def test_a_rank_takes_its_own_contiguous_slice():
    batch = torch.arange(8)
    slices = [World(rank, 2).shard(batch).tolist() for rank in range(2)]
    assert slices == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert World().shard(batch).tolist() == list(range(8))


@pytest.mark.slow
def test_two_processes_equal_one_process_accumulating_two_micro_batches(tmp_path):
    one, two, wrong = tmp_path / "one", tmp_path / "two", tmp_path / "wrong"
    single = launch([*TINY_RUN, "--grad-accum", "2", "--out", str(one)], 1)
    assert single.returncode == 0, single.stderr
    double = launch([*TINY_RUN, "--out", str(two)], 2)
    assert double.returncode == 0, double.stderr
    curve, weights = curve_and_weights(one)
    curve2, weights2 = curve_and_weights(two)
    assert curve2 == pytest.approx(curve, abs=1e-5)
    assert sorted(weights2) == sorted(weights) and len(weights) > 10
    for name, value in weights.items():
        torch.testing.assert_close(weights2[name], value, atol=1e-5, rtol=1e-5, msg=name)
    # only rank 0 wrote, and nothing half-written is left
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    # a deliberately wrong sharding (both ranks read the same rows) is caught
    bad = tmp_path / "same_slice.py"
    bad.write_text(SAME_SLICE)
    broken = launch([*TINY_RUN, "--out", str(wrong)], 2, script=bad)
    assert broken.returncode == 0, broken.stderr
    curve3, weights3 = curve_and_weights(wrong)
    assert curve3 != pytest.approx(curve, abs=1e-5)


@pytest.mark.slow
def test_more_processes_than_the_batch_has_rows_exit_2_on_every_rank(tmp_path):
    proc = launch([*TINY_RUN, "--batch-size", "2", "--grad-accum", "2", "--out",
                   str(tmp_path / "out")], 2)  # fmt: skip
    assert proc.returncode != 0
    assert "--batch-size: expected a multiple of processes x --grad-accum = 2 x 2" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_checkpoint_written_by_two_processes_resumes_in_one_and_back(tmp_path):
    """The checkpoint holds no process count: either run reads the other's, in full."""
    out = tmp_path / "run"
    assert launch([*TINY_RUN, "--out", str(out)], 2).returncode == 0
    written = (out / "checkpoint.safetensors").read_bytes()
    alone = launch([*TINY_RUN, "--resume", "--out", str(out)], 1)
    assert alone.returncode == 0, alone.stderr
    assert json.loads((out / "results.json").read_text())["steps_done"] == 6
    again = launch([*TINY_RUN, "--grad-accum", "2", "--resume", "--out", str(out)], 2)
    assert again.returncode == 0, again.stderr
    assert (out / "checkpoint.safetensors").read_bytes() == written  # finished: nothing new
