"""Every Python block in docs/ runs: each page's blocks in order, in one namespace, offline, in a
folder holding the files they name (a saved machine, a local checkpoint). Blocks that are an
example file verbatim (docs/examples/) run in tests/test_integration_examples.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import qwen35_tensors as q
from click.testing import CliRunner

from qwenfit.cli import main
from qwenfit.specs.table import load_specs

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
EXAMPLES = {p.read_text() for p in (DOCS / "examples").iterdir()}
PAGES = sorted(p for p in DOCS.glob("*.md") if BLOCK.search(p.read_text()))


def blocks(page: Path) -> list[str]:
    return [b for b in BLOCK.findall(page.read_text()) if b not in EXAMPLES]


def prepare(folder: Path) -> None:
    """The files the blocks name: a machine saved by `qwenfit probe --json`, a node list, and a
    fine-tune folder shaped like the official 0.8B (config.json + safetensors headers)."""
    saved = CliRunner().invoke(main, ["probe", "--json", "--gpu", "RTX 4090", "--ram", "64GB"])
    (folder / "box.json").write_text(saved.stdout)
    fleet = Path(__file__).parent / "fixtures" / "fleet" / "h200-2node.json"
    (folder / "nodes.json").write_text(fleet.read_text())  # docs/fleet.md: a node list
    a = load_specs().get("0.8b").model_dump(mode="json")["architecture"]
    d = folder / "Qwen3.5-0.8B-abliterated"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(q.nested_config(a)))
    q.write_sparse_safetensors(
        d / "model.safetensors", q.text_tensors(a) + q.vision_tensors(a["vision"])
    )


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prepare(tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs"}
    for i, code in enumerate(blocks(page)):
        exec(compile(code, f"{page.name}[{i}]", "exec"), namespace)


def test_a_block_that_imports_a_missing_module_fails(tmp_path: Path) -> None:
    with pytest.raises(ImportError):
        exec(compile("from qwenfit.checkpoints import resolve_model", "old", "exec"), {})
