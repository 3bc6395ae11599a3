"""Lab 08 checks. Run: poetry run pytest tests/ inside tutorials/labs/lab08_cross_attention, or
poetry run pytest tutorials/labs/lab08_cross_attention from the repository root."""

from pathlib import Path

from transformer_teaching.labs import lab08, load_learner_module

lab = load_learner_module(Path(__file__).parents[1] / "src" / "decoder.py")


def test_cross_attention():
    """Queries from the target, keys and values from the source, padding blocked."""
    lab08.check_cross_attention(lab.cross_attention)


def test_decoder_block():
    """Post- and pre-norm, against nn.TransformerDecoderLayer."""
    lab08.check_decoder_block(lab.DecoderBlock)
