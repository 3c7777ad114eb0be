"""Files replaced atomically: a reader sees the old content or the new, never half of either.

The content goes to a temporary file in the same directory (so the rename cannot cross a
filesystem), is flushed and fsync'd, then renamed over the target; a failure on the way removes
the temporary file and leaves the target as it was. ``sync_dir`` also fsyncs the directory, so
the rename itself survives a power cut (a calibration file a robot will rely on), at the cost of
one more sync (a cache does not need it).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(
    path: str | os.PathLike[str], data: bytes | str, *, sync_dir: bool = False
) -> Path:
    """Replace ``path`` with ``data`` (text is written as UTF-8) atomically; returns the path."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync_dir:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path
