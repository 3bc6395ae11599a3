"""Lab 06 checks. Run: poetry run pytest tests/ inside tutorials/labs/lab06_transformer_block, or
poetry run pytest tutorials/labs/lab06_transformer_block from the repository root."""

from pathlib import Path

from transformer_teaching.labs import lab06, load_learner_module

lab = load_learner_module(Path(__file__).parents[1] / "src" / "block.py")


def test_feed_forward():
    lab06.check_feed_forward(lab.TransformerBlock)


def test_post_norm():
    """norm_first=False, the paper's block, against nn.TransformerEncoderLayer."""
    lab06.check_post_norm(lab.TransformerBlock)


def test_pre_norm():
    """norm_first=True, GPT-2's block, against nn.TransformerEncoderLayer."""
    lab06.check_pre_norm(lab.TransformerBlock)
