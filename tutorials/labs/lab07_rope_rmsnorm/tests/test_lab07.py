"""Lab 07 checks. Run: poetry run pytest tests/ inside tutorials/labs/lab07_rope_rmsnorm, or
poetry run pytest tutorials/labs/lab07_rope_rmsnorm from the repository root."""

from pathlib import Path

from transformer_teaching.labs import lab07, load_learner_module

lab = load_learner_module(Path(__file__).parents[1] / "src" / "modern.py")


def test_rope_frequencies():
    lab07.check_rope_frequencies(lab.rope_frequencies)


def test_rotate_half():
    lab07.check_rotate_half(lab.rotate_half)


def test_rope():
    """Your rope against v7's RotaryEmbedding and apply_rope, half-split pairing."""
    lab07.check_rope(lab.rope)


def test_rmsnorm():
    """Your RMSNorm against torch.nn.RMSNorm, with a random weight."""
    lab07.check_rmsnorm(lab.RMSNorm)
