"""qwenfit's disk cache: where it lives and how it is written (atomically, never half a file).

Only two things are cached: what was read from the Hugging Face Hub (`hub/`), and this machine's
measured memory bandwidth (`ram_bandwidth.json`, written by every probe that measures it).
Nothing else in qwenfit writes files. A cache entry is read with `read_cache_json`: anything
unreadable, oversized, malformed or nested too deep counts as absent, never as an error.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

MAX_CACHE_ENTRY = 16 * 1024 * 1024  # a cached Hub summary is a few KB


def _absolute(text: str | None) -> Path | None:
    """`text` as an absolute path (after `~`), or None: the XDG Base Directory spec says a
    relative path in these variables is invalid and must be ignored, so the cache never lands
    in whatever folder qwenfit happens to run in."""
    if not text:
        return None
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # ~user of an unknown user
        return None
    return path if path.is_absolute() else None


def cache_dir() -> Path:
    """$QWENFIT_CACHE_DIR, else $XDG_CACHE_HOME/qwenfit, else ~/.cache/qwenfit (relative values
    of either variable are ignored)."""
    explicit = _absolute(os.environ.get("QWENFIT_CACHE_DIR"))
    if explicit:
        return explicit
    xdg = _absolute(os.environ.get("XDG_CACHE_HOME"))
    base = xdg if xdg else Path.home() / ".cache"
    return base / "qwenfit"


def read_cache_json(path: Path) -> Any:
    """A cache entry as JSON, or None when it is absent or cannot be trusted: not a regular
    file, larger than `MAX_CACHE_ENTRY`, not UTF-8, not JSON, or nested too deep."""
    from qwenfit.errors import QwenfitError
    from qwenfit.inputs import read_json

    try:
        return read_json(path, what="cache entry", max_bytes=MAX_CACHE_ENTRY)
    except QwenfitError:
        return None


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
