"""Writing files so that nothing is lost: atomic, fsynced, with the normal file mode.

Every result, figure and checkpoint the package writes goes through :func:`write_bytes`:
the data goes to a temporary file beside the target, is flushed to disk (``fsync``), gets
the mode a new file would get under the current umask (0644 under umask 022), and is then
renamed over the target. An interrupted run leaves the old file or the new one, never half
of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from io import BytesIO
from pathlib import Path


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; parent directories are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp creates 0600
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def json_bytes(payload: dict) -> bytes:
    """``payload`` as indented JSON with a final newline: the layout of every results file."""
    return (json.dumps(payload, indent=2) + "\n").encode()


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` as JSON, atomically."""
    write_bytes(path, json_bytes(payload))


def write_figure(path: Path, figure) -> None:
    """Save a matplotlib figure as PNG, atomically and without a timestamp."""
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    write_bytes(path, buffer.getvalue())
