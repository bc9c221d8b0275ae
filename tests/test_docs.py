"""Worked examples in docs/ are real output: each `console` block is run and compared."""

from __future__ import annotations

from pathlib import Path

import pytest
from docgen import EXAMPLE, example_output

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLES = [
    (page.name, m.group(1), m.group(2))
    for page in sorted(DOCS.glob("*.md"))
    for m in EXAMPLE.finditer(page.read_text())
]


def test_there_are_worked_examples() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize(
    ("page", "args", "expected"), EXAMPLES, ids=[f"{p}:{a[:50]}" for p, a, _ in EXAMPLES]
)
def test_console_examples_are_current(page: str, args: str, expected: str) -> None:
    assert example_output(args) == expected, f"{page}: run 'python tools/docgen.py'"
