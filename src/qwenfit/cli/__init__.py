"""Stage 7, the `qwenfit` command: a thin click layer over the public API.

`options` holds the option types and shared option groups, `commands` the commands, `render`
the human output, `progress` the stderr spinner. The console script is `qwenfit.cli:main`.
"""

from __future__ import annotations

from qwenfit.cli.commands import main

__all__ = ["main"]
