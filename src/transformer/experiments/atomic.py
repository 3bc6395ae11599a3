"""Atomic writes: a file is written to a temporary name beside it, then renamed into place.

An interrupted run never leaves a half-written results file or figure.
"""

from __future__ import annotations

import json
import os
import tempfile
from io import BytesIO
from pathlib import Path


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: dict) -> None:
    write_bytes(path, (json.dumps(payload, indent=2, sort_keys=False) + "\n").encode())


def write_figure(path: Path, figure) -> None:
    """Save a matplotlib figure as PNG, atomically."""
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    write_bytes(path, buffer.getvalue())
