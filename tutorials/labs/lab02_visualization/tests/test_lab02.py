"""Lab 02 checks. Run: poetry run pytest tests/ inside tutorials/labs/lab02_visualization, or
poetry run pytest tutorials/labs/lab02_visualization from the repository root."""

from pathlib import Path

from transformer_teaching.labs import lab02, load_learner_module

lab = load_learner_module(Path(__file__).parents[1] / "src" / "visualize.py")


def test_attention_maps():
    lab02.check_attention_maps(lab.attention_maps)


def test_plot_attention():
    lab02.check_plot_attention(lab.plot_attention)
