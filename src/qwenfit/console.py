"""The console script. It guards the import of the command line: a Ctrl-C in that first tenth of
a second ends the way one during a command does ("Error: interrupted", exit 130), not with a
traceback of whichever module was loading."""

from __future__ import annotations

import os
import signal
from types import FrameType


def run() -> None:
    previous = signal.signal(signal.SIGINT, _interrupted)
    from qwenfit.cli import run as command  # imported here: this import is what is guarded

    signal.signal(signal.SIGINT, previous)
    command()


def _interrupted(signum: int, frame: FrameType | None) -> None:
    try:
        os.write(2, b"Error: interrupted\n")
    finally:
        os._exit(130)  # 128 + SIGINT, as shells report it
