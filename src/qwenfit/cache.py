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


def home_folder() -> Path | None:
    """The home folder if it is known and absolute: a relative $HOME, or no $HOME and a uid
    without a passwd entry (a container started with --user N), gives None; so does an empty
    $HOME (which Python reads as '/')."""
    if "HOME" in os.environ and not os.environ["HOME"].strip():
        return None
    try:
        home = Path.home()
    except (RuntimeError, KeyError, OSError):
        return None
    return home if home.is_absolute() else None


def _private_temp() -> Path:
    """A folder of this user's own under the system temporary folder: the cache when there is no
    usable home. A name already taken by someone else (or a link) is not used."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    path = Path(tempfile.gettempdir()) / f"qwenfit-cache-{uid}"
    with contextlib.suppress(OSError):
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.lstat()
        if path.is_dir() and not path.is_symlink() and st.st_uid == uid:
            return path
    return Path(tempfile.mkdtemp(prefix="qwenfit-cache-"))


def cache_dir() -> Path:
    """$QWENFIT_CACHE_DIR, else $XDG_CACHE_HOME/qwenfit, else ~/.cache/qwenfit (relative values
    of either variable are ignored); without a usable home, a private folder under the system
    temporary folder (`cache_note` says so), never the current folder."""
    explicit = _absolute(os.environ.get("QWENFIT_CACHE_DIR"))
    if explicit:
        return explicit
    xdg = _absolute(os.environ.get("XDG_CACHE_HOME"))
    if xdg:
        return xdg / "qwenfit"
    home = home_folder()
    return home / ".cache" / "qwenfit" if home else _private_temp()


def cache_note() -> str | None:
    """A note when the cache falls back to the temporary folder (no usable home), else None."""
    if _absolute(os.environ.get("QWENFIT_CACHE_DIR")) or _absolute(
        os.environ.get("XDG_CACHE_HOME")
    ):
        return None
    if home_folder() is not None:
        return None
    return (
        f"no usable home folder (HOME is {os.environ.get('HOME')!r}): the cache is in "
        f"{cache_dir()}; set QWENFIT_CACHE_DIR to keep it"
    )


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
