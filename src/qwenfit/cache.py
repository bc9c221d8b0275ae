"""qwenfit's disk cache: where it lives and how it is written (atomically, never half a file).

Only two things are cached: what was read from the Hugging Face Hub, and this machine's measured
memory bandwidth. Nothing else in qwenfit writes files.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """$QWENFIT_CACHE_DIR, else $XDG_CACHE_HOME/qwenfit, else ~/.cache/qwenfit."""
    explicit = os.environ.get("QWENFIT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "qwenfit"


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and os.replace: readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
