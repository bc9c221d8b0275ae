"""A spinner on stderr for work that can take seconds (Hub requests), only on a terminal.

Nothing is drawn when stderr is not a TTY (pipes, CI, installers), and stdout is never touched,
so `--json` output stays one clean document.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

FRAMES = "|/-\\"


@contextmanager
def spinner(message: str, stream: TextIO | None = None, interval: float = 0.1) -> Iterator[None]:
    out = stream or sys.stderr
    if not out.isatty():
        yield
        return
    done = threading.Event()

    def spin() -> None:
        for frame in itertools.cycle(FRAMES):
            out.write(f"\r{frame} {message}")
            out.flush()
            if done.wait(interval):
                break
        out.write("\r" + " " * (len(message) + 2) + "\r")
        out.flush()

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
