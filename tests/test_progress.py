"""The spinner draws only on a terminal, and never on stdout."""

from __future__ import annotations

import io
import time

from qwenfit.cli.progress import spinner


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_spinner_when_not_a_terminal() -> None:
    out = io.StringIO()
    with spinner("fetching", out):
        time.sleep(0.02)
    assert out.getvalue() == ""


def test_spinner_draws_and_clears_on_a_terminal() -> None:
    out = FakeTTY()
    with spinner("fetching config", out, interval=0.005):
        time.sleep(0.03)
    text = out.getvalue()
    assert "fetching config" in text and text.endswith("\r")
