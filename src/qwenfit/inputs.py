"""The one input discipline of every reader: files qwenfit is given come from strangers.

Every file qwenfit reads goes through here: only regular files (a FIFO would hang, /dev/zero
never ends, a folder is not a file), a size cap checked before a byte is read, UTF-8 with a
clear error, JSON nested no deeper than `MAX_JSON_DEPTH` (CPython's parser recurses), and every
OS failure (name too long, permission denied, no such file) as one line naming the path with
`repr`, so a path holding a newline stays on one line. Each error is raised as the class the
caller chooses: `SpecError` for a spec table, `UsageError` for a `--machine` file,
`BadFileError` for checkpoints and anything else.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import math
import os
import stat
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any

from qwenfit.errors import BadFileError, QwenfitError, UsageError
from qwenfit.units import MiB

# JSON documents qwenfit reads are small: spec tables ~200 KB, config.json ~10 KB, a
# safetensors index ~100 KB. Far above those, far below what hurts a machine.
MAX_JSON_BYTES = 16 * MiB
# Deeper than any real document (config.json: 3 levels, the spec table: 6), far below the
# interpreter's recursion limit.
MAX_JSON_DEPTH = 64
_SHOWN = 120


def shown(path: str | os.PathLike[str]) -> str:
    """A path as one printable token: repr (newlines escaped), long ones shortened."""
    text = repr(os.fspath(path))
    return text if len(text) <= _SHOWN else text[: _SHOWN - 4] + "...'"


def printable(text: str | os.PathLike[str]) -> str:
    """A name as it is when it prints on one line, else as `shown` gives it (escaped)."""
    plain = os.fspath(text)
    return plain if plain.isprintable() else shown(plain)


def os_reason(e: OSError) -> str:
    """'permission denied', 'file name too long', ... from an OSError, lower case."""
    if e.errno == errno.ENAMETOOLONG:
        return "file name too long"
    return (e.strerror or type(e).__name__).lower()


# The folder every opened file must resolve into (the service's --allow-dir), or None.
_ROOT: ContextVar[Path | None] = ContextVar("qwenfit_inputs_root", default=None)


@contextlib.contextmanager
def confined(root: Path | None) -> Iterator[None]:
    """Within this block every file opened here must resolve (symlinks followed at every level,
    `..` included) to a path below `root`; None: no confinement."""
    token = _ROOT.set(None if root is None else Path(os.path.realpath(root)))
    try:
        yield
    finally:
        _ROOT.reset(token)


def confine(path: str | os.PathLike[str], *, what: str = "file") -> str:
    """The path to open: unchanged outside `confined`; inside it, the fully resolved path,
    refused (UsageError, naming `path` as given) when it leaves the folder."""
    root = _ROOT.get()
    if root is None:
        return os.fspath(path)
    try:
        real = Path(os.path.realpath(os.fspath(path)))
    except (OSError, ValueError):
        raise UsageError(f"cannot read {what} {shown(path)}: not a valid path") from None
    if not real.is_relative_to(root):
        raise UsageError(f"cannot read {what} {shown(path)}: it leads outside the allowed folder")
    return os.fspath(real)


@functools.cache
def _pseudo_devices() -> frozenset[int]:
    """Device numbers of the kernel's pseudo file systems (/proc, /sys) on this machine."""
    found = set()
    for root in ("/proc", "/sys"):
        with contextlib.suppress(OSError):
            found.add(os.stat(root).st_dev)
    return frozenset(found)


def open_regular(
    path: str | os.PathLike[str],
    *,
    what: str,
    max_bytes: int,
    error: type[QwenfitError] = BadFileError,
) -> tuple[IO[bytes], int]:
    """Open `path` for reading if it is a regular file of at most `max_bytes` bytes.

    The file is opened with O_NONBLOCK (a FIFO cannot block the open) and checked with fstat on
    the open descriptor, so what is checked is what is read. Returns the binary file and its size.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    if _ROOT.get() is not None:
        flags |= getattr(os, "O_NOFOLLOW", 0)  # resolved just now: a link here is a swap
    target = confine(path, what=what)
    try:
        fd = os.open(target, flags)
    except OSError as e:
        raise error(f"cannot read {what} {shown(path)}: {os_reason(e)}") from None
    except ValueError:  # an embedded NUL byte
        raise error(f"cannot read {what} {shown(path)}: not a valid path") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise error(f"cannot read {what} {shown(path)}: {kind}")
        if st.st_dev in _pseudo_devices():
            # /proc and /sys report their entries as regular files of size 0; some never end
            # or block (/proc/kmsg). None is a file qwenfit is meant to read.
            raise error(f"cannot read {what} {shown(path)}: a /proc or /sys entry, not a file")
        if st.st_size > max_bytes:
            raise error(
                f"{what} {shown(path)} is {st.st_size} bytes; at most {max_bytes} are allowed"
            )
        # The descriptor stays non-blocking: a regular file reads the same, and a /proc or
        # /sys entry that would block (/proc/kmsg) fails with EAGAIN instead of hanging.
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


def read_bytes(
    path: str | os.PathLike[str],
    *,
    what: str,
    max_bytes: int = MAX_JSON_BYTES,
    error: type[QwenfitError] = BadFileError,
) -> bytes:
    """The whole of a regular file no larger than `max_bytes` (read at most that many bytes)."""
    f, _ = open_regular(path, what=what, max_bytes=max_bytes, error=error)
    try:
        with f:
            data = f.read(max_bytes + 1)
        if data is None:  # non-blocking and nothing there: a file that would block
            raise OSError(errno.EAGAIN, "it would block (not a regular file)")
    except OSError as e:
        raise error(f"cannot read {what} {shown(path)}: {os_reason(e)}") from None
    if len(data) > max_bytes:  # grew while we read it
        raise error(f"{what} {shown(path)} is larger than {max_bytes} bytes")
    return data


def decode_utf8(data: bytes, *, what: str, origin: str, error: type[QwenfitError]) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{what} {origin}: not UTF-8 text (bad byte at offset {e.start})") from None


def read_text(
    path: str | os.PathLike[str],
    *,
    what: str,
    max_bytes: int = MAX_JSON_BYTES,
    error: type[QwenfitError] = BadFileError,
) -> str:
    """A regular UTF-8 text file no larger than `max_bytes`."""
    data = read_bytes(path, what=what, max_bytes=max_bytes, error=error)
    return decode_utf8(data, what=what, origin=shown(path), error=error)


def json_depth_ok(value: Any, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether no array or object in a parsed JSON value nests deeper than `max_depth`.

    Iterative (an explicit stack), one visit per value: time linear in the document.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth + 1 > max_depth:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return True


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def parse_json(
    text: str | bytes,
    *,
    what: str,
    origin: str,
    error: type[QwenfitError] = BadFileError,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """JSON with bounded nesting; NaN / Infinity (not JSON) refused; one-line errors.

    Parsed by the C scanner (linear time); a document nested past the interpreter's
    recursion limit fails there as RecursionError, and anything deeper than `max_depth`
    after parsing is refused too."""
    if isinstance(text, bytes):
        text = decode_utf8(text, what=what, origin=origin, error=error)
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise error(
            f"{what} {origin}: not valid JSON ({e.msg}, line {e.lineno} column {e.colno})"
        ) from None
    except RecursionError:  # CPython's scanner recurses per level and stops at the limit
        raise error(f"{what} {origin}: JSON nested deeper than {max_depth} levels") from None
    except ValueError as e:  # NaN / Infinity, integers beyond the interpreter's digit limit
        raise error(f"{what} {origin}: not valid JSON ({e})") from None
    if not json_depth_ok(value, max_depth):
        raise error(f"{what} {origin}: JSON nested deeper than {max_depth} levels")
    return value


def read_json(
    path: str | os.PathLike[str],
    *,
    what: str,
    max_bytes: int = MAX_JSON_BYTES,
    error: type[QwenfitError] = BadFileError,
) -> Any:
    """A regular UTF-8 JSON file: size-capped, depth-bounded, one-line errors naming it."""
    text = read_text(path, what=what, max_bytes=max_bytes, error=error)
    return parse_json(text, what=what, origin=shown(path), error=error)


def checked_int(
    value: Any,
    *,
    field: str,
    origin: str,
    low: int = 1,
    high: int,
    error: type[QwenfitError] = BadFileError,
) -> int:
    """An integer field of a file in [low, high]: bools, strings, lists, NaN, infinities and
    fractions refused (a float holding a whole number, e.g. 4096.0, is taken)."""
    ok = False
    result = 0
    if isinstance(value, bool):
        ok = False
    elif isinstance(value, int):
        ok, result = True, value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        ok, result = True, int(value)
    elif hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        try:
            return checked_int(
                value.item(), field=field, origin=origin, low=low, high=high, error=error
            )
        except (TypeError, ValueError):
            ok = False
    if not ok or not low <= result <= high:
        text = repr(value)
        text = text if len(text) <= 40 else text[:37] + "..."
        raise error(f"{origin}: {field} is {text}; must be a whole number in [{low}, {high}]")
    return result
