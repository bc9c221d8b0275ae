"""The house rules, read from the source: imports point down the pipeline, no module imports
itself back through another, and no private name crosses a module boundary.

Stages, bottom to top (docs/architecture.md): the foundation modules, then hardware, specs,
memory, fit, launch, recommender, fleet (Kubernetes node pools), verify (a running runtime
against the estimate), serve (the HTTP and MCP service), cli (which starts the service, so
serve sits below it and can never import it).
Every import counts, including those inside functions and under TYPE_CHECKING: a lazy import
is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "qwenfit"
STAGES = [
    "hardware",
    "specs",
    "memory",
    "fit",
    "launch",
    "recommender",
    "fleet",
    "verify",
    "serve",
    "cli",
]
FOUNDATION = {
    "errors",
    "units",
    "cache",
    "datafiles",
    "lazy",
    "inputs",
    "settings",
    "adapters",
    "bounds",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """Every qwenfit module `path` imports (a `from pkg import sub` counts as `pkg.sub`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("qwenfit")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("qwenfit"):
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}


def stage(module: str) -> int:
    """Rank of a module's stage: -1 for the foundation, len(STAGES) for the facade (the
    package, `python -m qwenfit` and the console script)."""
    parts = module.split(".")
    if module in ("qwenfit", "qwenfit.__main__", "qwenfit.console"):
        return len(STAGES)
    if parts[1] in FOUNDATION:
        return -1
    return STAGES.index(parts[1])


def test_every_module_belongs_to_a_stage() -> None:
    for name in MODULES:
        stage(name)  # raises ValueError for a module outside the map


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_only_point_down(module: str) -> None:
    upward = sorted(dep for dep in GRAPH[module] if stage(dep) > stage(module))
    assert not upward, f"{module} imports a later stage: {upward}"


def test_foundation_imports_nothing_above_it() -> None:
    for name in MODULES:
        if stage(name) == -1:
            assert all(stage(dep) == -1 for dep in GRAPH[name]), name


def test_no_import_cycles() -> None:
    # Edges from a package's __init__ to its own submodules are its re-exports (lazy, and
    # only for type checkers); they are not dependencies of the package's modules.
    def edges(module: str) -> set[str]:
        own = MODULES[module].name == "__init__.py"
        return {d for d in GRAPH[module] if not (own and d.startswith(module + "."))}

    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges(node)):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep] if dep in path else [node, dep]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def _python_files() -> list[Path]:
    roots = [SRC, REPO / "tests", REPO / "benchmarks", REPO / "tools"]
    return sorted(p for root in roots for p in root.rglob("*.py"))


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_private_name_crosses_a_module(path: Path) -> None:
    """`from qwenfit.x import _y` and `qwenfit_module._y` are both refused."""
    tree = ast.parse(path.read_text())
    modules: set[str] = set()  # local names bound to qwenfit modules
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qwenfit"):
            for a in node.names:
                if a.name.startswith("_") and a.name != "__version__":
                    bad.append(f"line {node.lineno}: imports {a.name}")
                if f"{node.module}.{a.name}" in MODULES:
                    modules.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name.startswith("qwenfit")}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ):
            bad.append(f"line {node.lineno}: uses {node.value.id}.{node.attr}")
    assert not bad, bad


def test_the_graph_is_read_from_the_real_tree() -> None:
    """Guards the test itself: a known downward import must be seen."""
    assert "qwenfit.memory.config" in GRAPH["qwenfit.memory.estimator"]
    assert "qwenfit.specs.table" in GRAPH["qwenfit.memory.runtimes"]


INTERFACES = ("qwenfit.cli", "qwenfit.serve")
PIPELINE = {f"qwenfit.{s}" for s in STAGES}


def test_interfaces_import_the_pipeline_through_its_public_names() -> None:
    """cli/ and serve/ import a pipeline stage as its package (`from qwenfit.memory import
    estimate`), never one of its modules: each stage's `__init__` lists its public names once."""
    bad = []
    for name, deps in GRAPH.items():
        if not name.startswith(INTERFACES):
            continue
        for dep in deps:
            package = ".".join(dep.split(".")[:2])
            if package in PIPELINE and dep != package and not dep.startswith(INTERFACES):
                bad.append(f"{name} imports {dep}")
    assert not bad, bad
