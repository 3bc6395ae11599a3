"""Lab 03 checks. Run: poetry run pytest tests/ inside tutorials/labs/lab03_multihead, or
poetry run pytest tutorials/labs/lab03_multihead from the repository root."""

from pathlib import Path

from transformer_teaching.labs import lab03, load_learner_module

lab = load_learner_module(Path(__file__).parents[1] / "src" / "multihead.py")


def test_split_heads():
    lab03.check_split_heads(lab.split_heads)


def test_merge_heads():
    lab03.check_merge_heads(lab.merge_heads)


def test_multihead_attention():
    lab03.check_multihead(lab.MultiHeadAttention)
