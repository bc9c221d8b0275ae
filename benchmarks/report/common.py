"""Paths, data loading and Markdown helpers shared by the report modules."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"
RESULTS = BENCH / "results"
MEASURED = REPO / "tests" / "fixtures" / "measured"
PEERS = BENCH / "peers"
GiB = 1024**3

# The peer rig's helpers and benchmarks/accuracy_llamacpp.py are plain scripts, not a package.
for _p in (PEERS, BENCH):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


DOC = REPO / "docs" / "benchmarks.md"
# The sections of DOC that rigs other than run_all.py write between their own markers
# (run_all.py keeps them when it rewrites the page: report.markdown.kept_sections).
SECTIONS = {
    "serve-load": ("<!-- serve-load:begin -->", "<!-- serve-load:end -->"),  # serve_load.py
    "speed-goals": ("<!-- speed-goals:begin -->", "<!-- speed-goals:end -->"),  # realworld/peers.py
    "llama-server": ("<!-- llama-server:begin -->", "<!-- llama-server:end -->"),  # llamaserver/
}


def write_section(name: str, section: str) -> None:
    """Put `section` (from its begin marker to its end marker) in place of the section `name`
    of DOC, or at the end of DOC when it has none yet."""
    begin, end = SECTIONS[name]
    text = DOC.read_text(encoding="utf-8")
    body = section.rstrip("\n")
    i, j = text.find(begin), text.find(end)
    if 0 <= i < j:
        text = text[:i] + body + text[j + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    DOC.write_text(text, encoding="utf-8")


def load(path: Path) -> Any:
    """Parse a JSON file."""
    return json.loads(path.read_text())


def measured(name: str) -> Any:
    """One of tests/fixtures/measured/<name>.json."""
    return load(MEASURED / f"{name}.json")


def table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table (cells str()-ed, None as "-")."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in r) + " |")
    return "\n".join(lines)


def pct(x: float | None, signed: bool = True) -> str | None:
    """An error in % for a table cell."""
    if x is None:
        return None
    return f"{x:+.1f}" if signed else f"{x:.1f}"


def gib(b: float | None) -> str | None:
    """Bytes as GiB with two decimals."""
    return None if b is None else f"{b / GiB:.2f}"


def err(est: float | None, ref: float | None) -> float | None:
    """Signed relative error of est against ref, in %."""
    if est is None or not ref:
        return None
    return 100.0 * (est - ref) / ref
