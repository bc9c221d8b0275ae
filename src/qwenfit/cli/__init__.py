"""Stage 7, the `qwenfit` command: a thin click layer over the public API.

`options` holds the option types and shared option groups, `commands` the commands, `render`
the human output, `progress` the stderr spinner. The console script, `qwenfit.console:run`,
guards the import of this package and calls `run`.
"""

from __future__ import annotations

import contextlib
import os
import sys

from qwenfit.cli.commands import main

__all__ = ["main", "run"]


def run() -> None:
    """The console script: run the command, flush its output, and end the process without the
    interpreter's teardown (tens of milliseconds of freeing objects that the operating system
    reclaims anyway), which matters inside installers and shell completion. A failed flush is
    one line and exit 1, as every write failure.

    The command loads no pydantic plugins (PYDANTIC_DISABLE_PLUGINS, unless the caller set it):
    looking them up reads every installed distribution's metadata, a fifth of the start-up.
    """
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        main.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        _say("Error: cannot write the output")
        code = 1
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        code = code or 1
    os._exit(code)


def _say(line: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, (line + "\n").encode())
