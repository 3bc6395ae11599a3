"""Tutorial 08's worked online-softmax example and figures (``transformer_teaching.efficient``)."""

import json
import math
import shutil
from pathlib import Path

import pytest

from transformer_teaching import efficient

RESULTS = Path(__file__).resolve().parents[1] / "tutorials" / "results" / "efficient"


def test_the_worked_example_follows_the_online_softmax_by_hand():
    example = efficient.online_softmax_example()
    first, second = example["blocks"]
    # block 1, scores 1 and 2: m = 2, l = e^-1 + e^0, a = 1·e^-1 + 2·e^0
    assert first["max"] == 2.0 and first["rescale"] == 0.0
    assert first["sum"] == pytest.approx(math.exp(-1) + 1, abs=1e-12)
    assert first["weighted"] == pytest.approx(math.exp(-1) + 2, abs=1e-12)
    # block 2, scores 4 and 0: the max rises to 4, the old sums are scaled by e^(2-4)
    assert second["max"] == 4.0 and second["rescale"] == pytest.approx(math.exp(-2), abs=1e-12)
    assert second["sum"] == pytest.approx(math.exp(-2) * first["sum"] + 1 + math.exp(-4), abs=1e-12)
    plain = sum(v * math.exp(s) for s, v in zip((1, 2, 4, 0), (1, 2, 3, 4), strict=True)) / sum(
        math.exp(s) for s in (1, 2, 4, 0)
    )
    for key in ("softmax_output", "tiled_attention_output"):
        assert example[key] == pytest.approx(plain, abs=1e-12), key
    assert second["output"] == pytest.approx(plain, abs=1e-12)


def flat(value, prefix=""):
    """A nested dict/list of numbers -> {dotted key: number}."""
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in flat(item, f"{prefix}{key}.").items()
        }
    if isinstance(value, list):
        return {
            k: v for i, item in enumerate(value) for k, v in flat(item, f"{prefix}{i}.").items()
        }
    return {prefix.rstrip("."): value}


def test_the_committed_example_is_the_one_computed_now():
    committed = flat(json.loads((RESULTS / "online_softmax.json").read_text()))
    computed = flat(efficient.online_softmax_example())
    assert committed.keys() == computed.keys()
    for key, value in computed.items():
        assert committed[key] == pytest.approx(value, abs=1e-12), key


def test_the_figures_are_drawn_from_the_benchmark_results(tmp_path):
    for name in ("tiled_attention.json", "generation.json"):
        shutil.copy(RESULTS / name, tmp_path / name)
    efficient.save(tmp_path)
    for figure in ("memory_vs_length.png", "tokens_per_s.png"):
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
    assert json.loads((tmp_path / "online_softmax.json").read_text())["block_size"] == 2
