"""Output that is whole or an error: stdout through a writer that never drops bytes.

CPython's buffered stdout can lose a short write: under a file-size limit (`ulimit -f`; Python
ignores SIGXFSZ) `sys.stdout.buffer.write` reports fewer bytes than it was given, the text layer
ignores the count, and the program exits 0 with a truncated document. `whole_stdout` puts a raw
writer under stdout that repeats `os.write` until every byte is out or the OS refuses (EFBIG,
ENOSPC, EPIPE: an OSError, which the CLI turns into one line and exit 1). A closed stdout
(fd 1 not open: Python sets sys.stdout to None and click prints nothing) raises on first write.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from typing import Any


class WholeWriter(io.RawIOBase):
    """A raw file whose `write` writes all of its bytes or raises OSError."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            n = os.write(self.fd, view)
            if n <= 0:
                raise OSError(errno.EIO, "the output took no bytes")
            view = view[n:]
        return total


class ClosedStdout(io.TextIOBase):
    """stdout when fd 1 is closed: any write is an error."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "stdout is closed")


def whole_stdout() -> None:
    """Replace `sys.stdout` (a real file) with the same stream over `WholeWriter`."""
    stream = sys.stdout
    if stream is None:
        sys.stdout = ClosedStdout()
        return
    if isinstance(stream, io.TextIOWrapper) and isinstance(
        stream.buffer,
        (io.BufferedWriter, io.FileIO),  # FileIO: PYTHONUNBUFFERED, python -u
    ):
        if isinstance(getattr(stream.buffer, "raw", None), WholeWriter):
            return
        try:
            fd = stream.fileno()
        except (OSError, ValueError):
            return
        stream.flush()
        sys.stdout = io.TextIOWrapper(
            io.BufferedWriter(WholeWriter(fd)),
            encoding=stream.encoding,
            errors=stream.errors,
            line_buffering=stream.line_buffering,
        )
