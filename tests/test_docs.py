"""Worked examples in docs/ are real output: each `console` block is run and compared."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from qwenfit.cli import main

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"```console\n\$ qwenfit ([^\n]+)\n(.*?)```", re.S)
# Lines the examples leave out to stay short.
OMITTED = ("note: llama-server also keeps", "note: on the CPU llama.cpp repacks")
EXAMPLES = [(page.name, m.group(1), m.group(2))
            for page in sorted(DOCS.glob("*.md")) for m in BLOCK.finditer(page.read_text())]


def test_there_are_worked_examples() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize(("page", "args", "expected"), EXAMPLES,
                         ids=[f"{p}:{a[:50]}" for p, a, _ in EXAMPLES])
def test_console_examples_are_current(page: str, args: str, expected: str) -> None:
    r = CliRunner().invoke(main, shlex.split(args))
    lines = [x for x in r.output.splitlines() if not x.startswith(OMITTED)]
    assert "\n".join(lines) + "\n" == expected, f"{page}: re-run the example and paste it"
