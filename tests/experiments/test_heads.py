"""The heads section of every task run, the heads summary and the induction dynamics."""

import json
from pathlib import Path

import pytest
import torch

from transformer.experiments import cli, heads_cli, heads_dynamics, heads_summary
from transformer.experiments.heads import SCORES

RESULTS = Path(__file__).resolve().parents[2] / "tutorials" / "results"


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Quick sequential runs of v1 (one head a layer) and v4 (four), two seeds each."""
    out = tmp_path_factory.mktemp("results")
    for version in ("v1", "v4"):
        argv = ["--quick", "--version", version, "--steps", "5", "--num-seeds", "2",
                "--out", str(out / "sequential")]  # fmt: skip
        assert cli.main("sequential", argv) == 0
    return out


def read(folder, version, seed):
    return json.loads(
        (folder / "sequential" / version / f"seed{seed}" / "results.json").read_text()
    )


@pytest.mark.parametrize("version", ["v1", "v4"])
def test_the_heads_section_agrees_with_the_runs_own_measurements(quick_runs, version):
    trained = read(quick_runs, version, 0)["trained"]
    heads, layers = trained["heads"], len(trained["example"]["attention"])
    width = len(trained["example"]["attention"][0])
    assert heads["task_score"] == "three_back"
    for name in SCORES:
        table = torch.tensor(heads["scores"][name])
        assert table.shape == (layers, width) and ((table >= 0) & (table <= 1)).all(), name
    ablation = heads["ablation"]
    # the ablation's own unablated accuracy is the one evaluate measured another way
    assert ablation["accuracy"] == pytest.approx(trained["accuracy"], abs=1e-6)
    without = ablation["accuracy_without"]  # (L, H)
    needed, top = ablation["most_needed"], ablation["top_scoring"]
    layer, head = needed["head"]
    assert needed["accuracy_without"] == without[layer][head] == min(min(row) for row in without)
    layer, head = top["head"]
    three_back = heads["scores"]["three_back"]
    assert top["three_back"] == three_back[layer][head] == max(max(row) for row in three_back)


def test_the_summary_reads_every_stage_and_seed(quick_runs):
    assert heads_cli.main(["--results", str(quick_runs), "--no-dynamics"]) == 0
    summary = json.loads((quick_runs / "heads" / "summary.json").read_text())["sequential"]
    assert set(summary) == {"v1", "v4"}
    for version in ("v1", "v4"):
        runs = [read(quick_runs, version, seed)["trained"]["heads"] for seed in (0, 1)]
        best = [max(max(row) for row in r["scores"]["three_back"]) for r in runs]
        assert summary[version]["best_score"]["three_back"]["max"] == max(best)
        assert summary[version]["best_score"]["three_back"]["min"] == min(best)
        assert summary[version]["top_scoring_head"] == [
            r["ablation"]["top_scoring"]["head"] for r in runs
        ]
    table = (quick_runs / "heads" / "summary.md").read_text()
    assert "## sequential (its score: three_back)" in table and "| v4 |" in table


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--every", "0"], "--every: expected a positive integer"),
        (["--every", "20", "--steps", "10"], "--every: expected at most --steps=10, got 20"),
        (["--dynamics-version", "v6"], "--dynamics-version: invalid choice: 'v6'"),
        (["--num-seeds", "x"], "--num-seeds"),
    ],
)
def test_bad_flags_exit_2_before_any_work(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        heads_cli.main(["--results", str(tmp_path), *flags])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert list(tmp_path.iterdir()) == []


def test_no_runs_to_read_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        heads_cli.main(["--results", str(tmp_path / "none"), "--no-dynamics"])
    assert exit_.value.code == 2
    assert "--results: no task runs under" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_runs_written_before_head_scores_get_a_one_line_error(quick_runs, tmp_path, capsys):
    old = tmp_path / "sequential" / "v1" / "seed0"
    old.mkdir(parents=True)
    run = read(quick_runs, "v1", 0)
    del run["trained"]["heads"]
    (old / "results.json").write_text(json.dumps(run))
    with pytest.raises(SystemExit):
        heads_cli.main(["--results", str(tmp_path), "--no-dynamics"])
    assert "sequential/v1/seed0 has no head scores" in capsys.readouterr().err


def test_stopping_and_resuming_to_measure_changes_nothing():
    """Measured every 4 steps (resuming twice) or once at 12: the same point at step 12."""
    often = heads_dynamics.run("v4", 0, 4, torch.device("cpu"), steps=12)["points"]
    once = heads_dynamics.run("v4", 0, 12, torch.device("cpu"), steps=12)["points"]
    assert [p["step"] for p in often] == [0, 4, 8, 12] and [p["step"] for p in once] == [0, 12]
    assert often[-1] | {"train_loss": None} == once[-1] | {"train_loss": None}
    assert often[0] == once[0]


def test_the_committed_dynamics_end_where_the_committed_runs_end():
    """Trained with stops to measure, v4 ends with the induction score of its uninterrupted
    pattern runs: the committed dynamics and the committed ladder agree."""
    dynamics = json.loads((RESULTS / "heads" / "dynamics.json").read_text())
    assert dynamics["steps"] == 1500
    for curve in dynamics["curves"]:
        folder = RESULTS / "pattern" / dynamics["version"] / f"seed{curve['seed']}"
        scores = json.loads((folder / "results.json").read_text())["trained"]["heads"]["scores"]
        assert curve["points"][-1]["induction"] == max(max(r) for r in scores["induction"])


def test_the_summary_table_shows_each_spread():
    assert heads_summary.shown({"mean": 0.5, "std": 0.25, "min": 0.25, "max": 0.75}) == (
        "0.50 ± 0.25 [0.25, 0.75]"
    )
    assert heads_summary.shown({"mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5}, True) == (
        "50.0% ± 0.0 [50.0, 50.0]"
    )


def test_the_run_scores_are_the_weights_on_the_keys_they_name():
    """head_scores against loops over the maps the model itself returns."""
    from transformer.contract import get_stage
    from transformer.experiments.heads import head_scores
    from transformer.experiments.runner import heldout_batch, model_config
    from transformer.experiments.tasks import get_task

    task = get_task("sequential")
    torch.manual_seed(0)
    model = get_stage("v4").build_model(model_config(task, "v4")).eval()
    batch = heldout_batch(task, "heldout", 8, 0, torch.device("cpu"))
    scores = head_scores(model, batch.inputs, task.vocab_size, 0)
    with torch.no_grad():
        _, maps = model(batch.inputs, return_attention=True)  # L x (B, H, T, T)
    seq = task.seq_len
    for layer, weights in enumerate(maps):
        for head in range(weights.shape[1]):
            for name, k in (("previous_token", 1), ("three_back", 3)):
                by_hand = sum(weights[b, head, t, t - k] for b in range(8) for t in range(k, seq))
                expected = float(by_hand) / (8 * (seq - k))
                assert scores[name][layer, head].item() == pytest.approx(expected, abs=1e-6)
