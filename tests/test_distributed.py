"""torchrun with two CPU processes (gloo) is the same computation as one process that
accumulates two micro-batches: the same loss curve and the same weights, also across an
interruption that changes the number of processes. Failures end non-zero and leave no
half-written results."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from transformer.lm.checkpoint import read_checkpoint
from transformer.lm.distributed import World
from transformer_teaching import data_parallel

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "language_model.py"
STEPS = 20  # the quick run evaluates (and checkpoints) at steps 0, 10 and 20
TINY_RUN = ["--quick", "--steps", str(STEPS), "--device", "cpu", "--seed", "1"]
# every rank takes rank 0's slice: the sharding bug the equality must catch
SAME_SLICE = """
import sys
from transformer.lm.distributed import World
from transformer_teaching import data_parallel
World.shard = lambda self, batch: batch[: batch.shape[0] // self.size]
from transformer.experiments.language_model import main
sys.exit(main(sys.argv[1:]))
"""
# rank 1 (or the only process) dies abruptly in training step DIE_AT, as a crash would
DIES = """
import os, sys
import transformer.lm.training as training
real, calls = training.train_step, [0]
def dying(*args, **kwargs):
    calls[0] += 1
    if calls[0] == int(os.environ["DIE_AT"]) and os.environ.get("RANK", "1") == "1":
        os._exit(3)
    return real(*args, **kwargs)
training.train_step = dying
from transformer.experiments.language_model import main
sys.exit(main(sys.argv[1:]))
"""


def launch(args, processes, script=SCRIPT, launcher=("--standalone",), env=None):
    """Run the experiment as one plain process, or under torchrun (``--standalone`` picks a
    free port)."""
    command = [sys.executable, str(script), *args]
    if processes > 1:
        command = [
            sys.executable, "-m", "torch.distributed.run", *launcher,
            f"--nproc_per_node={processes}", str(script), *args,
        ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


def written(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def curve_and_weights(out: Path) -> tuple[list[float], dict]:
    results = json.loads((out / "results.json").read_text())
    weights = load_file(out / "checkpoint.safetensors")
    return results["curves"]["train_loss"]["values"], {
        k: v for k, v in weights.items() if k.startswith("model")
    }


def assert_same_training(out: Path, reference: Path) -> None:
    curve, weights = curve_and_weights(reference)
    curve2, weights2 = curve_and_weights(out)
    assert len(curve) == STEPS and curve2 == pytest.approx(curve, abs=1e-5)
    assert sorted(weights2) == sorted(weights) and len(weights) > 10
    for name, value in weights.items():
        torch.testing.assert_close(weights2[name], value, atol=1e-5, rtol=1e-5, msg=name)


@pytest.fixture(scope="module")
def accumulated(tmp_path_factory):
    """One process, two micro-batches per step: the run every other run must equal."""
    runs = {}

    def run(version: str) -> Path:
        if version not in runs:
            out = tmp_path_factory.mktemp(f"one_{version}")
            proc = launch([*TINY_RUN, "--version", version, "--grad-accum", "2", "--out",
                           str(out), "--overwrite"], 1)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            runs[version] = out
        return runs[version]

    return run


def test_a_rank_takes_its_own_contiguous_slice():
    batch = torch.arange(8)
    slices = [World(rank, 2).shard(batch).tolist() for rank in range(2)]
    assert slices == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert World().shard(batch).tolist() == list(range(8))


@pytest.mark.slow
@pytest.mark.parametrize("version", ["v5", "v7"])
def test_two_processes_equal_one_process_accumulating_two_micro_batches(
    tmp_path, accumulated, version
):
    one, two = accumulated(version), tmp_path / "two"
    double = launch([*TINY_RUN, "--version", version, "--out", str(two)], 2)
    assert double.returncode == 0, double.stderr
    assert_same_training(two, one)
    # only rank 0 wrote, and nothing half-written is left
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


@pytest.mark.slow
def test_a_sharding_where_every_rank_reads_the_same_rows_is_caught(tmp_path, accumulated):
    wrong = tmp_path / "wrong"
    bad = written(tmp_path, "same_slice.py", SAME_SLICE)
    broken = launch([*TINY_RUN, "--out", str(wrong)], 2, script=bad)
    assert broken.returncode == 0, broken.stderr
    with pytest.raises(AssertionError):
        assert_same_training(wrong, accumulated("v5"))


@pytest.mark.slow
@pytest.mark.parametrize(("before", "after"), [(2, 1), (1, 2)])
def test_a_run_interrupted_mid_way_resumes_with_another_process_count(
    tmp_path, accumulated, before, after
):
    """A process dies in step 13; the step-10 checkpoint resumes with the other count and
    ends where the uninterrupted run ends."""
    out = tmp_path / "run"
    dies = written(tmp_path, "dies.py", DIES)
    accum = ["--grad-accum", "2"] if before == 1 else []
    crashed = launch([*TINY_RUN, *accum, "--out", str(out)], before, script=dies,
                     env={"DIE_AT": "13"})  # fmt: skip
    assert crashed.returncode != 0
    left = sorted(p.name for p in out.iterdir())
    if before > 1:
        assert "exitcode  : 3" in crashed.stderr  # torchrun names the rank that died
    else:  # the process that died could not remove its lock file; nothing holds it any more
        left.remove(".lock")
    # no half-written results: the last whole checkpoint, nothing else (rank 0, stopped by
    # torchrun, released its lock)
    assert left == ["checkpoint.safetensors"]
    assert read_checkpoint(out / "checkpoint.safetensors").step == 10
    accum = ["--grad-accum", "2"] if after == 1 else []
    resumed = launch([*TINY_RUN, *accum, "--resume", "--out", str(out)], after)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_training(out, accumulated("v5"))


@pytest.mark.slow
def test_a_port_in_use_fails_before_any_process_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        launcher = ("--master_addr=127.0.0.1", f"--master_port={port}")
        proc = launch([*TINY_RUN, "--out", str(tmp_path / "out")], 2, launcher=launcher)
    assert proc.returncode != 0
    assert "address already in use" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_more_processes_than_the_batch_has_rows_exit_2_on_every_rank(tmp_path):
    proc = launch([*TINY_RUN, "--batch-size", "2", "--grad-accum", "2", "--out",
                   str(tmp_path / "out")], 2)  # fmt: skip
    assert proc.returncode != 0
    assert "--batch-size: expected a multiple of processes x --grad-accum = 2 x 2" in proc.stderr
    assert proc.stderr.count("error: --batch-size") == 2  # each rank says it, in one line
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_finished_checkpoint_resumes_in_one_process_and_back_with_nothing_new(tmp_path):
    """The checkpoint holds no process count: either run reads the other's, in full."""
    out, run = tmp_path / "run", [*TINY_RUN, "--steps", "6"]  # the last --steps counts
    assert launch([*run, "--out", str(out)], 2).returncode == 0
    written_bytes = (out / "checkpoint.safetensors").read_bytes()
    alone = launch([*run, "--resume", "--out", str(out)], 1)
    assert alone.returncode == 0, alone.stderr
    assert json.loads((out / "results.json").read_text())["steps_done"] == 6
    again = launch([*run, "--grad-accum", "2", "--resume", "--out", str(out)], 2)
    assert again.returncode == 0, again.stderr
    assert (out / "checkpoint.safetensors").read_bytes() == written_bytes


@pytest.mark.slow
def test_the_equality_tutorial_09_quotes_is_measured_on_real_runs(tmp_path, monkeypatch):
    """``transformer_teaching.data_parallel`` (shortened here): torchrun's two processes and
    one accumulating process are recorded as bit-identical, and the file is written."""
    monkeypatch.setattr(data_parallel, "SETTINGS", ["--quick", "--device", "cpu", "--steps", "10"])
    monkeypatch.setattr(data_parallel, "SHOWN_STEPS", (1, 10))
    path = data_parallel.save(tmp_path)
    measured = json.loads(path.read_text())
    same = measured["two_vs_accumulated"]
    assert same["max_abs_weight_difference"] == 0.0 == same["max_abs_train_loss_difference"]
    assert sorted(same["train_loss_difference_at_step"]) == ["1", "10"]
    bits = measured["val_bits_per_char"]
    assert bits["two"] == bits["accumulated"] and 0 < bits["whole"] < 8
