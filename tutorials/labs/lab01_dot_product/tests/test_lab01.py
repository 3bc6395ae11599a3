"""Lab 01 check. Run: poetry run pytest tests/ inside tutorials/labs/lab01_dot_product, or
poetry run pytest tutorials/labs/lab01_dot_product from the repository root."""

from pathlib import Path

from transformer_teaching.labs import lab01, load_learner_module

lab = load_learner_module(Path(__file__).parents[1] / "src" / "attention.py")


def test_attention():
    lab01.check_attention(lab.attention)
