"""Lab 09 checks. Run: poetry run pytest tests/ inside tutorials/labs/lab09_gpt, or
poetry run pytest tutorials/labs/lab09_gpt from the repository root."""

from pathlib import Path

from transformer_teaching.labs import lab09, load_learner_module

lab = load_learner_module(Path(__file__).parents[1] / "src" / "gpt.py")


def test_causal_block():
    """GPT-2's pre-norm causal block, against a GPT-2 block's numbers."""
    lab09.check_block(lab.CausalBlock)


def test_gpt():
    """The whole model with its tied head, against a tiny GPT2LMHeadModel's logits."""
    lab09.check_gpt(lab.GPT)


def test_generate():
    """Greedy and sampled generation, against the reference loop."""
    lab09.check_generate(lab.generate)
