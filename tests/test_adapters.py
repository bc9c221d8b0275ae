"""Runtime adapters: registered once, consistent with the spec table, and the only place that
spells a runtime's name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from qwenfit.adapters import ADAPTERS, RUNTIMES, adapter, runtime_named
from qwenfit.errors import UsageError
from qwenfit.specs.table import load_specs

SRC = Path(__file__).resolve().parents[1] / "src" / "qwenfit"


def spelled_names(path: Path) -> list[int]:
    """Lines where a runtime name is a string constant: not a docstring, not part of a message
    (f-string), not a `Literal[...]` type declaration."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            skip.add(id(body[0].value))
        if isinstance(node, ast.JoinedStr) or (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id == "Literal"
        ):
            skip |= {id(n) for n in ast.walk(node)}
    return [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and n.value in RUNTIMES and id(n) not in skip
    ]


def test_no_runtime_name_is_spelled_outside_the_adapters() -> None:
    found = {
        str(p.relative_to(SRC)): lines
        for p in SRC.rglob("*.py")
        if "adapters" not in p.parts and (lines := spelled_names(p))
    }
    assert not found, f"ask adapter(name) for a trait, or use the constants: {found}"


def test_the_scan_finds_a_spelled_name(tmp_path: Path) -> None:
    code = tmp_path / "x.py"
    code.write_text('"""vllm"""\nX = f"vllm {1}"\nif runtime == "vllm":\n    pass\n')
    assert spelled_names(code) == [3]


def test_every_runtime_of_the_spec_table_has_one_adapter() -> None:
    table = load_specs()
    assert set(table.runtimes) == set(ADAPTERS)
    for name, info in table.runtimes.items():
        a = adapter(name)
        assert a.format in info.formats, name
        assert set(a.search_kv_types) <= set(info.kv_cache_types), name
        assert len(set(a.aliases) | {a.name}) == len(a.aliases) + 1


def test_user_spellings_resolve_and_others_are_refused() -> None:
    assert runtime_named("LLAMA-SERVER") == runtime_named("llama.cpp")
    assert runtime_named(" vLLM ") == runtime_named("vllm")
    with pytest.raises(UsageError, match=r"allowed: llama\.cpp"):
        runtime_named("tensorrt")
    with pytest.raises(UsageError):
        runtime_named(3)
