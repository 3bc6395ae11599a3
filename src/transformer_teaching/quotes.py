"""Numbers quoted in tutorials, tied to the results files they come from.

A quoted number carries an invisible marker naming its source::

    v2 reaches 93.4%<!--r:compare/comparison.json:pattern.v2.accuracy:pct1--> on pattern

``r:FILE:KEY:FORMAT``: FILE is relative to ``tutorials/results/``, KEY a dotted path into its
JSON (list items by index), FORMAT one of ``FORMATS``. ``refresh`` rewrites every quoted
number from the files; ``mismatches`` lists those that differ (the tutorial test).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

FORMATS: dict[str, Callable[[float], str]] = {
    "pct1": lambda v: f"{100 * v:.1f}%",
    "pct0": lambda v: f"{100 * v:.0f}%",
    "f1": lambda v: f"{v:.1f}",
    "f2": lambda v: f"{v:.2f}",
    "f3": lambda v: f"{v:.3f}",
    "int": lambda v: f"{round(v)}",
    "e1": lambda v: f"{v:.1e}",
}
QUOTE = re.compile(
    r"(?P<value>-?[\d.]+(?:e[-+]\d+)?%?)<!--r:(?P<file>[^:]+):(?P<key>[^:]+):(?P<fmt>\w+)-->"
)
UNQUOTED_DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?!\d)(?!(?:e[-+]\d+)?%?<!--r:)%?")


def lookup(results_dir: Path, file: str, key: str) -> float:
    path = results_dir / file
    if not path.is_file():
        raise ValueError(f"quote {file}:{key}: expected a results file at {path}, found none")
    value = json.loads(path.read_text())
    for part in key.split("."):
        try:
            value = value[int(part)] if isinstance(value, list) else value[part]
        except (KeyError, IndexError, ValueError):
            raise ValueError(
                f"quote {file}:{key}: expected {part!r} in the results, got keys "
                f"{list(value) if isinstance(value, dict) else f'0..{len(value) - 1}'}"
            ) from None
    return float(value)


def expected(match: re.Match, results_dir: Path) -> str:
    fmt = match["fmt"]
    if fmt not in FORMATS:
        raise ValueError(f"quote format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    return FORMATS[fmt](lookup(results_dir, match["file"], match["key"]))


def refresh(text: str, results_dir: Path) -> str:
    """The text with every quoted number rewritten from the results files."""
    return QUOTE.sub(lambda m: expected(m, results_dir) + m[0][len(m["value"]) :], text)


def mismatches(text: str, results_dir: Path) -> list[str]:
    """One line per quoted number that differs from its source."""
    return [
        f"{m['file']}:{m['key']}: the tutorial says {m['value']}, the results say {want}"
        for m in QUOTE.finditer(text)
        if (want := expected(m, results_dir)) != m["value"]
    ]


def prose(text: str) -> str:
    """The markdown without fenced code blocks, inline code and link targets."""
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    text = re.sub(r"`[^`]*`", "", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def unquoted_numbers(text: str) -> list[str]:
    """Decimal numbers in prose that carry no source marker."""
    return UNQUOTED_DECIMAL.findall(prose(text))
