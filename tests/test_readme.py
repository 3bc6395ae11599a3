"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    assert namespace["logits"].shape == (2, 7, 10)
    assert namespace["weights"].shape == (2, 5, 5)


def test_readme_links_resolve():
    targets = re.findall(r"\]\(([^)#]+)\)", README.read_text())
    assert len(targets) >= 4
    for target in targets:
        if not target.startswith("http"):
            assert (README.parent / target).exists(), f"README links to missing {target}"


@pytest.mark.parametrize(
    "number",
    range(len(re.findall(r"```python\n", README.read_text()))),
    ids=lambda n: f"block{n + 1}",
)
def test_each_readme_block_runs_on_its_own(number, monkeypatch, tmp_path):
    """A reader pastes one block: it carries its own imports."""
    monkeypatch.chdir(tmp_path)
    block = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)[number]
    namespace: dict = {"__name__": "readme"}
    exec(compile(block, f"README.md python block {number + 1}", "exec"), namespace)  # noqa: S102
    assert len(namespace) > 2  # it defined something
