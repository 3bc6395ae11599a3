"""A --quick run never replaces a full one: without --out it goes to its own folder, its
results say ``"quick": true``, and the tables and figures drawn from it say so."""

import json

import pytest

from transformer.experiments import cli, compare, language_model

FULL = '{"a full run": "stays"}\n'


def plant_full_run(folder):
    """A stand-in for a full run's results, which a quick run must leave alone."""
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(FULL)
    return folder / "results.json"


def test_a_quick_task_run_goes_to_its_own_folder_and_says_it_is_quick(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    full = plant_full_run(tmp_path / "results" / "pattern" / "v1" / "seed0")
    assert cli.main("pattern", ["--quick", "--version", "v1", "--steps", "3"]) == 0
    assert full.read_text() == FULL
    quick = tmp_path / "results" / "pattern" / "quick" / "v1" / "seed0"
    assert json.loads((quick / "results.json").read_text())["quick"] is True
    # the comparison of the quick runs reads the quick folders and says what they are
    assert compare.main(["--quick"]) == 0
    table = (tmp_path / "results" / "compare" / "quick" / "comparison.md").read_text()
    assert table.startswith("Quick runs: short training")
    summary = json.loads(
        (tmp_path / "results" / "compare" / "quick" / "comparison.json").read_text()
    )
    assert summary["pattern"]["v1"]["quick"] is True
    assert not (tmp_path / "results" / "compare" / "comparison.md").exists()


def test_the_quick_note_is_in_every_figure_title(monkeypatch, tmp_path):
    titles = []
    monkeypatch.setattr(
        "transformer.experiments.plots.plt.Axes.set_title",
        lambda self, text, **kw: titles.append(text),
    )
    monkeypatch.setattr("matplotlib.figure.Figure.suptitle", lambda self, t, **kw: titles.append(t))
    monkeypatch.chdir(tmp_path)
    cli.main("pattern", ["--quick", "--version", "v1", "--steps", "2"])
    figure_titles = [t for t in titles if "layer" not in t]  # the heatmaps' own panels
    assert len(figure_titles) == 3 and all("[quick run]" in t for t in figure_titles)


def test_a_full_run_is_not_marked_quick(tmp_path):
    out = tmp_path / "full"
    assert cli.main("pattern", ["--version", "v1", "--steps", "2", "--out", str(out)]) == 0
    assert "quick" not in json.loads((out / "v1" / "seed0" / "results.json").read_text())


@pytest.mark.slow
def test_a_quick_language_model_run_goes_to_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    full = plant_full_run(tmp_path / "results" / "language_model")
    assert language_model.main(["--quick", "--steps", "2", "--device", "cpu"]) == 0
    assert full.read_text() == FULL
    results = tmp_path / "results" / "language_model" / "quick" / "results.json"
    assert json.loads(results.read_text())["quick"] is True
