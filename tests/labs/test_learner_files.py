"""The learner's files in tutorials/labs: untouched skeletons fail with "not implemented yet",
the same test files pass once a skeleton holds a solution, and the one command works."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from transformer_teaching.labs import (
    LabCheckFailure,
    lab01,
    lab02,
    lab03,
    lab04,
    lab05,
    lab06,
    lab07,
    lab08,
    lab09,
    lab10,
)
from transformer_teaching.labs.checks import load_learner_module

ROOT = Path(__file__).resolve().parents[2]
LABS = ROOT / "tutorials" / "labs"

# lab directory -> the learner's file: src/<file> to fill in, solutions/<file> solved
LAB_FILES = {
    "lab01_dot_product": "attention.py",
    "lab02_visualization": "visualize.py",
    "lab03_multihead": "multihead.py",
    "lab04_pytorch_comparison": "compare.py",
    "lab05_positional_encoding": "positional.py",
    "lab06_transformer_block": "block.py",
    "lab07_rope_rmsnorm": "modern.py",
    "lab08_cross_attention": "decoder.py",
    "lab09_gpt": "gpt.py",
    "lab10_efficient": "efficient.py",
}


def skeleton(lab: str):
    return load_learner_module(LABS / lab / "src" / LAB_FILES[lab])


def test_every_lab_has_src_tests_and_solutions():
    assert sorted(p.name for p in LABS.glob("lab*")) == sorted(LAB_FILES)
    for lab, filename in LAB_FILES.items():
        folder = LABS / lab
        assert (folder / "src" / filename).is_file() and (folder / "solutions" / filename).is_file()
        assert [p.name for p in (folder / "tests").glob("test_*.py")] == [f"test_{lab[:5]}.py"]
        solution = (folder / "solutions" / filename).read_text()
        assert len(solution.splitlines()) <= 80, f"{lab}: a solution is learner-sized"
        assert "not implemented" not in solution


SKELETON_CHECKS = [
    pytest.param("lab01_dot_product", lambda m: lab01.check_attention(m.attention), id="lab01"),
    pytest.param(
        "lab02_visualization", lambda m: lab02.check_attention_maps(m.attention_maps), id="lab02-a"
    ),
    pytest.param(
        "lab02_visualization", lambda m: lab02.check_plot_attention(m.plot_attention), id="lab02-b"
    ),
    pytest.param("lab03_multihead", lambda m: lab03.check_split_heads(m.split_heads), id="lab03-a"),
    pytest.param("lab03_multihead", lambda m: lab03.check_merge_heads(m.merge_heads), id="lab03-b"),
    pytest.param(
        "lab03_multihead", lambda m: lab03.check_multihead(m.MultiHeadAttention), id="lab03-c"
    ),
    pytest.param(
        "lab04_pytorch_comparison",
        lambda m: lab04.check_to_torch_mask(m.to_torch_mask),
        id="lab04-a",
    ),
    pytest.param(
        "lab04_pytorch_comparison",
        lambda m: lab04.check_load_from_torch(m.load_from_torch),
        id="lab04-b",
    ),
    pytest.param(
        "lab04_pytorch_comparison",
        lambda m: lab04.check_matches_torch(m.load_from_torch, m.to_torch_mask),
        id="lab04-c",
    ),
    pytest.param(
        "lab05_positional_encoding",
        lambda m: lab05.check_sinusoidal_encoding(m.sinusoidal_encoding),
        id="lab05-a",
    ),
    pytest.param(
        "lab05_positional_encoding",
        lambda m: lab05.check_positional_encoding(m.SinusoidalPositionalEncoding),
        id="lab05-b",
    ),
    pytest.param(
        "lab05_positional_encoding",
        lambda m: lab05.check_order_aware(m.SinusoidalPositionalEncoding),
        id="lab05-c",
    ),
    pytest.param(
        "lab06_transformer_block",
        lambda m: lab06.check_feed_forward(m.TransformerBlock),
        id="lab06-a",
    ),
    pytest.param(
        "lab06_transformer_block", lambda m: lab06.check_post_norm(m.TransformerBlock), id="lab06-b"
    ),
    pytest.param(
        "lab06_transformer_block", lambda m: lab06.check_pre_norm(m.TransformerBlock), id="lab06-c"
    ),
    pytest.param(
        "lab07_rope_rmsnorm",
        lambda m: lab07.check_rope_frequencies(m.rope_frequencies),
        id="lab07-a",
    ),
    pytest.param(
        "lab07_rope_rmsnorm", lambda m: lab07.check_rotate_half(m.rotate_half), id="lab07-b"
    ),
    pytest.param("lab07_rope_rmsnorm", lambda m: lab07.check_rope(m.rope), id="lab07-c"),
    pytest.param("lab07_rope_rmsnorm", lambda m: lab07.check_rmsnorm(m.RMSNorm), id="lab07-d"),
    pytest.param(
        "lab08_cross_attention",
        lambda m: lab08.check_cross_attention(m.cross_attention),
        id="lab08-a",
    ),
    pytest.param(
        "lab08_cross_attention", lambda m: lab08.check_decoder_block(m.DecoderBlock), id="lab08-b"
    ),
    pytest.param("lab09_gpt", lambda m: lab09.check_block(m.CausalBlock), id="lab09-a"),
    pytest.param("lab09_gpt", lambda m: lab09.check_gpt(m.GPT), id="lab09-b"),
    pytest.param("lab09_gpt", lambda m: lab09.check_generate(m.generate), id="lab09-c"),
    pytest.param(
        "lab10_efficient",
        lambda m: lab10.check_online_softmax_attention(m.online_softmax_attention),
        id="lab10-a",
    ),
    pytest.param(
        "lab10_efficient",
        lambda m: lab10.check_cached_decode_step(m.cached_decode_step),
        id="lab10-b",
    ),
]


@pytest.mark.parametrize(("lab", "check"), SKELETON_CHECKS)
def test_untouched_skeleton_fails_as_not_implemented(lab, check):
    with pytest.raises(LabCheckFailure, match=r"not implemented yet: lab\d\d: implement"):
        check(skeleton(lab))


def solved_copy(tmp_path: Path) -> Path:
    """A copy of tutorials/labs with every src/ file replaced by its solutions/ file."""
    labs = tmp_path / "labs"
    shutil.copytree(LABS, labs, ignore=shutil.ignore_patterns("__pycache__"))
    for lab, filename in LAB_FILES.items():
        shutil.copyfile(labs / lab / "solutions" / filename, labs / lab / "src" / filename)
    return labs


def test_each_lab_test_file_passes_once_its_skeleton_holds_its_solution(tmp_path):
    labs = solved_copy(tmp_path)
    ran = []
    for lab in LAB_FILES:
        for test_file in sorted((labs / lab / "tests").glob("test_lab*.py")):
            module = load_learner_module(test_file)
            for name in dir(module):
                if name.startswith("test_"):
                    getattr(module, name)()  # a skip (pytest.skip) would raise here
                    ran.append(f"{lab}::{name}")
    assert len(ran) == 27, ran


def test_pytest_tests_inside_a_lab_runs_that_lab_only(tmp_path):
    """As the chapter works a lab: cd into it, then pytest tests/."""
    labs = solved_copy(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/", "-q", "-p", "no:cacheprovider"],
        cwd=labs / "lab06_transformer_block", capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout, result.stdout
    skeleton = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/", "-q", "-p", "no:cacheprovider"],
        cwd=LABS / "lab01_dot_product", capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert skeleton.returncode == 1 and "1 failed" in skeleton.stdout, skeleton.stdout


@pytest.mark.parametrize("lab", list(LAB_FILES))
def test_lab_readme_names_the_check_command(lab):
    readme = (LABS / lab / "README.md").read_text()
    assert f"poetry run pytest tutorials/labs/{lab}" in readme
    assert re.search(r"`transformer(_teaching\.labs\.solutions|\.v\d_\w+)", readme), "no solution"


def test_the_learners_command_fails_on_the_skeleton_and_says_why():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tutorials/labs/lab01_dot_product", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed" in result.stdout, result.stdout
    assert "attention(): not implemented yet: lab01: implement attention()" in result.stdout
