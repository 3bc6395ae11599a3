"""Lab 10 checks. Run: poetry run pytest tests/ inside tutorials/labs/lab10_efficient, or
poetry run pytest tutorials/labs/lab10_efficient from the repository root."""

from pathlib import Path

from transformer_teaching.labs import lab10, load_learner_module

lab = load_learner_module(Path(__file__).parents[1] / "src" / "efficient.py")


def test_online_softmax_attention():
    """Your blocked attention against SDPA, block sizes that do and do not divide T_k."""
    lab10.check_online_softmax_attention(lab.online_softmax_attention)


def test_cached_decode_step():
    """Your cached steps against full causal attention over the whole prefix, with RoPE."""
    lab10.check_cached_decode_step(lab.cached_decode_step)
