"""Lazy re-exports (PEP 562) for the package and its stages.

A stage's `__init__` names its public objects once; they are imported on first use, so
`import qwenfit` and a command that needs one stage never pay for the others.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def attach(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose `exports` map a name to its module
    (relative to `package`, e.g. '.probing')."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(module, package)
        # Bind every name this module exports at once: importing a submodule binds its own name
        # on the package, which must never shadow an exported object of the same name.
        for other, where in exports.items():
            if where == module:
                setattr(sys.modules[package], other, getattr(loaded, other))
        return getattr(loaded, name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
