"""The README's Python examples run as written."""

import re
from pathlib import Path

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
