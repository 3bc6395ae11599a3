"""Lab 05 checks. Run: poetry run pytest tests/ inside tutorials/labs/lab05_positional_encoding, or
poetry run pytest tutorials/labs/lab05_positional_encoding from the repository root."""

from pathlib import Path

from transformer_teaching.labs import lab05, load_learner_module

lab = load_learner_module(Path(__file__).parents[1] / "src" / "positional.py")


def test_sinusoidal_encoding():
    lab05.check_sinusoidal_encoding(lab.sinusoidal_encoding)


def test_positional_encoding():
    lab05.check_positional_encoding(lab.SinusoidalPositionalEncoding)


def test_model_learns_order():
    """The milestone: v3's model with your positions learns a task that needs order."""
    lab05.check_order_aware(lab.SinusoidalPositionalEncoding)
