"""The experiment scripts end to end, as a learner runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from transformer import NEXT_TOKEN, io, list_stages
from transformer import cli as shared_cli
from transformer.experiments import cli
from transformer.io import write_json

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ["pattern", "fibonacci", "sequential"]
VERSIONS = [stage.version for stage in list_stages(NEXT_TOKEN)]  # every stage these tasks take
FIGURES = [
    "attention.html",
    "checkpoint.safetensors",
    "loss_curve.png",
    "probe_attention.png",
    "results.json",
    "trained_attention.png",
]


def run_script(name, *args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, str(ROOT / "experiments" / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


def check_schema(result: dict, experiment: str, version: str) -> None:
    assert result["experiment"] == experiment and result["version"] == version
    for key in (
        "stage_idea",
        "task",
        "model",
        "training",
        "seed",
        "device",
        "torch_version",
        "probe",
        "trained",
        "files",
    ):
        assert key in result, key
    probe, trained = result["probe"], result["trained"]
    for key in ("tokens", "similar_weight", "dissimilar_weight", "last_query_weights"):
        assert key in probe, key
    assert sum(probe["last_query_weights"]) == pytest.approx(1.0, abs=1e-4)
    for key in (
        "accuracy",
        "chance",
        "seen_token_guess",
        "final_train_loss",
        "heldout_loss",
        "loss_curve",
        "attention_mass_on_needed",
        "best_head_attention_mass",
        "uniform_attention_mass",
    ):
        assert key in trained, key
    assert 0.0 <= trained["accuracy"] <= 1.0
    assert trained["chance"] == pytest.approx(1 / result["task"]["vocab_size"], abs=1e-6)
    masses = trained["attention_mass_on_needed"]
    assert len(masses) == result["model"]["num_layers"]
    heads = 1 if version == "v1" else 4
    assert result["model"]["num_heads"] == heads  # what ran, not what was asked
    assert all(len(per_head) == heads for per_head in masses.values())


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_script_runs_every_stage_in_quick_mode(experiment, tmp_path):
    out = tmp_path / experiment
    proc = run_script(experiment, "--version", "all", "--quick", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "chance" in proc.stdout
    assert "skipping v6: it cannot run next-token tasks (its encoder sees" in proc.stdout
    assert not (out / "v6").exists()
    for version in VERSIONS:
        assert sorted(p.name for p in (out / version).iterdir()) == ["seed0", "seed1", "seed2"]
        for seed in range(3):  # 'all' trains three seeds by default
            folder = out / version / f"seed{seed}"
            assert sorted(p.name for p in folder.iterdir()) == FIGURES
            for png in FIGURES:
                if png.endswith(".png"):
                    assert (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            page = (folder / "attention.html").read_text()
            assert page.startswith("<!DOCTYPE html>") and "http" not in page  # offline
            result = json.loads((folder / "results.json").read_text())
            check_schema(result, experiment, version)
            assert result["seed"] == seed
    comparison = json.loads((out / "comparison.json").read_text())
    assert set(comparison["stages"]) == set(VERSIONS)
    assert all(stage["seeds"] == [0, 1, 2] for stage in comparison["stages"].values())
    assert (out / "comparison.md").read_text().count(" ± ") >= len(VERSIONS)


@pytest.mark.slow
def test_default_output_directory_is_results_experiment_and_quick_for_a_quick_run(tmp_path):
    proc = run_script("sequential", "--quick", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (
        tmp_path / "results" / "sequential" / "quick" / "v1" / "seed0" / "results.json"
    ).is_file()
    proc = run_script("sequential", "--steps", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "results" / "sequential" / "v1" / "seed0" / "results.json").is_file()


BAD_FLAGS = [
    (
        ["--version", "v9"],
        "--version: unknown stage 'v9'; known stages: v1, v2, v3, v4, v5, v6, v7, all",
    ),
    (
        ["--version", "v6"],
        "--version: v6 cannot run next-token tasks: its encoder sees the whole input at once, "
        "so on a next-token task it would read the answer; run experiments/seq2seq.py",
    ),
    (["--steps", "0"], "argument --steps: expected a positive integer, got 0"),
    (
        ["--version", "v7", "--option", "num_kv_heads=3"],
        "--option: num_kv_heads: expected a divisor of num_heads=4 (each key/value head serves "
        "num_heads / num_kv_heads query heads), got 3",
    ),
    (["--steps", "-5"], "argument --steps: expected a positive integer, got -5"),
    (["--device", "tpu"], "--device: expected auto, cpu or cuda, got 'tpu'"),
    (["--seed", "abc"], "argument --seed: expected an integer seed, got 'abc'"),
    (
        ["--seed", str(2**64 - 1)],
        "argument --seed: expected a seed in [0, 2**32), got 18446744073709551615",
    ),
    (["--option", "norm_first"], "--option: expected KEY=VALUE, got 'norm_first'"),
    (["--num-seeds", "0"], "argument --num-seeds: expected a positive integer, got 0"),
    (["--num-seeds", str(2**32)], "--num-seeds: expected at most 1000 seeds, got 4294967296"),
    (
        ["--seed", str(2**32 - 2), "--num-seeds", "3"],
        "--num-seeds: expected seeds below 2**32, got up to 4294967296",
    ),
    (
        ["--version", "v2", "--option", "norm_first=true"],
        "--option: norm_first: expected it unset, since v2 has no such setting and would "
        "ignore it, got True; v2's settings: d_model, num_heads, num_layers, dropout, causal",
    ),
    (
        ["--version", "v4", "--option", "activation=tanh"],
        "--option: activation: expected 'relu' or 'gelu' for v4, got 'tanh'",
    ),
    (
        ["--version", "all", "--option", "positional=learned"],
        "--option: positional: expected it unset, since v1 has no such setting and would "
        "ignore it, got 'learned'; v1's settings: d_model, num_heads, num_layers, dropout, causal",
    ),
]


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS)
def test_bad_flags_exit_2_with_one_line_and_write_nothing(flags, message, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as caught:
        cli.main("fibonacci", [*flags, "--out", str(out)])
    assert caught.value.code == 2
    assert capsys.readouterr().err == f"fibonacci.py: error: {message}\n"
    assert not out.exists()


def test_a_bad_flag_exits_2_from_the_script_too(tmp_path):
    """Once through the real script, as a learner runs it."""
    proc = run_script("fibonacci", "--version", "v9", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("fibonacci.py: error: --version: unknown stage 'v9'")


def test_unwritable_out_exits_2(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as caught:
        cli.main("pattern", ["--quick", "--out", str(blocker / "sub")])
    assert caught.value.code == 2
    assert capsys.readouterr().err == (
        f"pattern.py: error: --out: expected a writable directory, but {blocker} is a file\n"
    )


def test_cuda_without_cuda_exits_2(tmp_path, monkeypatch):
    monkeypatch.setattr(shared_cli.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as info:
        cli.parse("fibonacci", ["--device", "cuda", "--out", str(tmp_path / "o")])
    assert info.value.code == 2


def test_same_seed_gives_identical_results_file(tmp_path, capsys):
    for run in ("a", "b", "c"):
        seed = "1" if run == "c" else "0"
        cli.main(
            "fibonacci",
            ["--quick", "--version", "v2", "--seed", seed, "--out", str(tmp_path / run)],
        )
    a, b, c = (
        (tmp_path / r / "v2" / f"seed{r == 'c':d}" / "results.json").read_bytes() for r in "abc"
    )
    assert a == b
    assert a != c


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path, monkeypatch):
    """Interrupted after the new bytes are written but before they are renamed into place."""
    path = tmp_path / "results.json"
    write_json(path, {"old": 1})

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(io.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"new": 2})
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"], "temporary file left behind"


@pytest.mark.slow
def test_compare_collects_stages_by_experiments(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "compare.py"),
            "--run",
            "--quick",
            "--results",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    header = (
        "| stage | pattern | fibonacci, unseen sequences | fibonacci, unseen pairs | sequential |"
    )
    assert header in proc.stdout
    compared = tmp_path / "compare" / "quick"  # quick runs, in their own folders
    summary = json.loads((compared / "comparison.json").read_text())
    assert set(summary) == set(EXPERIMENTS)
    assert all(set(runs) == set(VERSIONS) for runs in summary.values())
    assert (compared / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    table = (compared / "comparison.md").read_text()
    assert table.startswith("Quick runs:")
    runs = [
        json.loads(
            (tmp_path / "fibonacci" / "quick" / "v2" / f"seed{s}" / "results.json").read_text()
        )
        for s in range(3)
    ]
    mean = sum(r["trained"]["accuracy"] for r in runs) / 3
    pairs = [r["trained"]["unseen_pairs"]["accuracy"] for r in runs]
    row = next(line for line in table.splitlines() if line.startswith("| v2 |"))
    assert row.split("|")[3].strip().startswith(f"{100 * mean:.1f} ± ")  # unseen sequences
    assert f"[{100 * min(pairs):.1f}, {100 * max(pairs):.1f}]" in row.split("|")[4]


def test_compare_without_results_exits_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "compare.py"), "--results", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("compare.py: error: --results: expected experiment results")
    assert proc.stderr.count("\n") == 1


def test_deterministic_kernels_are_switched_on_only_for_cuda(monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "recorded")  # so that teardown restores it
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    before = torch.are_deterministic_algorithms_enabled()
    try:
        shared_cli.make_deterministic(torch.device("cpu"))
        assert not torch.are_deterministic_algorithms_enabled()
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
        shared_cli.make_deterministic(torch.device("cuda"))  # no GPU needed to set the flags
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(before)


def test_options_reach_the_stage_and_the_results_record_what_ran(tmp_path, capsys):
    out = tmp_path / "o"
    flags = ["--quick", "--version", "v4", "--out", str(out)]
    cli.main("sequential", [*flags, "--option", "norm_first=true", "--option", "activation=gelu"])
    model = json.loads((out / "v4" / "seed0" / "results.json").read_text())["model"]
    assert model["norm_first"] is True and model["activation"] == "gelu"
    assert model["positional"] == "sinusoidal" and model["max_len"] == 12  # the defaults


def test_v1_results_say_one_head(tmp_path, capsys):
    cli.main("pattern", ["--quick", "--version", "v1", "--out", str(tmp_path)])
    model = json.loads((tmp_path / "v1" / "seed0" / "results.json").read_text())["model"]
    assert model["num_heads"] == 1 and "max_len" not in model


def test_results_files_get_the_normal_file_mode(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        cli.main("pattern", ["--quick", "--version", "v2", "--out", str(tmp_path)])
    finally:
        os.umask(old)
    for path in (tmp_path / "v2" / "seed0").iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path.name
