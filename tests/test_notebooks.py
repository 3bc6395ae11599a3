"""Every tutorial opens as a Jupyter notebook (jupytext reads the Markdown) and runs from top
to bottom in a fresh kernel. Slow: run by .ci/run."""

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.md"))


def as_notebook(page: Path) -> nbformat.NotebookNode:
    """The page as jupytext converts it, with its shell cells (``%%bash``: the commands that
    train for minutes) turned back into text, as a reader would skip or run them alone."""
    notebook = jupytext.reads(page.read_text(), fmt="md")
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and cell.source.startswith("%%bash"):
            notebook.cells[index] = nbformat.v4.new_markdown_cell(
                f"```bash\n{cell.source[7:]}\n```"
            )
    return notebook


def test_the_conversion_keeps_every_python_block_as_a_code_cell():
    for page in PAGES:
        python_blocks = page.read_text().count("```python\n")
        cells = [c for c in as_notebook(page).cells if c.cell_type == "code"]
        assert len(cells) == python_blocks, page.name


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_each_tutorial_runs_as_a_notebook_in_a_fresh_kernel(page):
    notebook = as_notebook(page)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}})  # fmt: skip
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    ran = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in ran), page.name
