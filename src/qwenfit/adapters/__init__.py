"""Runtime adapters, registered once: one module per runtime declares what every stage asks of
it (psutil's one-module-per-platform idea). Nothing outside this package spells a runtime's
name; the stages ask `adapter(name)` for a trait, or compare with the constants below.

    from qwenfit.adapters import VLLM, adapter
    if adapter(est.runtime).gpu_share: ...
"""

from __future__ import annotations

from qwenfit.adapters import llamacpp, mlx, ollama, transformers, vllm
from qwenfit.adapters.base import Adapter, ContextDefault, Format, RuntimeName, Sizing, Vendor
from qwenfit.errors import UnsupportedError

__all__ = [
    "ADAPTERS",
    "LLAMACPP",
    "MLX",
    "OLLAMA",
    "RUNTIMES",
    "TRANSFORMERS",
    "VLLM",
    "Adapter",
    "ContextDefault",
    "Format",
    "RuntimeName",
    "Sizing",
    "Vendor",
    "adapter",
    "runtime_named",
]

ADAPTERS: dict[RuntimeName, Adapter] = {
    a.name: a
    for a in (
        llamacpp.ADAPTER,
        ollama.ADAPTER,
        vllm.ADAPTER,
        transformers.ADAPTER,
        mlx.ADAPTER,
    )
}
RUNTIMES: tuple[RuntimeName, ...] = tuple(ADAPTERS)
LLAMACPP: RuntimeName = llamacpp.ADAPTER.name
OLLAMA: RuntimeName = ollama.ADAPTER.name
VLLM: RuntimeName = vllm.ADAPTER.name
TRANSFORMERS: RuntimeName = transformers.ADAPTER.name
MLX: RuntimeName = mlx.ADAPTER.name


def adapter(name: str) -> Adapter:
    """The adapter of a runtime named as qwenfit names it (see `runtime_named` for user input)."""
    return ADAPTERS[name]  # type: ignore[index]


def runtime_named(text: object) -> RuntimeName:
    """A runtime as a user spells it ('vLLM', 'llama-server') -> its name; UsageError if none."""
    if isinstance(text, str):
        key = text.strip().lower()
        for a in ADAPTERS.values():
            if key == a.name or key in a.aliases:
                return a.name
    shown = repr(text)[:60]
    raise UnsupportedError(f"unknown runtime {shown}; allowed: {', '.join(RUNTIMES)}")
