"""qwenfit: which Qwen3.5 model a machine should run, how much memory it really takes, and the
command that starts it.

    from qwenfit import probe, recommend
    best = recommend(probe()).recommendations[0]
    print(best.model, best.quant, best.launch.steps[-1].shell)

Names are imported on first use (PEP 562), so `import qwenfit` stays cheap for installers.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # importing typing would double the cost of `import qwenfit`

_EXPORTS = {
    "probe": "qwenfit.hardware",
    "Machine": "qwenfit.hardware",
    "GPU": "qwenfit.hardware",
    "with_overrides": "qwenfit.hardware",
    "load_machine": "qwenfit.hardware",
    "load_specs": "qwenfit.specs",
    "SpecTable": "qwenfit.specs",
    "ModelSpec": "qwenfit.specs",
    "resolve_model": "qwenfit.specs",
    "Options": "qwenfit.memory",
    "estimate": "qwenfit.memory",
    "max_context": "qwenfit.memory",
    "Estimate": "qwenfit.memory",
    "Part": "qwenfit.memory",
    "sweep": "qwenfit.memory",
    "SweepResult": "qwenfit.memory",
    "check": "qwenfit.fit",
    "CheckResult": "qwenfit.fit",
    "Fit": "qwenfit.fit",
    "check_fit": "qwenfit.fit",
    "launch_command": "qwenfit.launch",
    "LaunchCommand": "qwenfit.launch",
    "recommend": "qwenfit.recommender",
    "launch_plan": "qwenfit.recommender",
    "LaunchPlan": "qwenfit.recommender",
    "Recommendation": "qwenfit.recommender",
    "RecommendResult": "qwenfit.recommender",
    "fleet": "qwenfit.fleet",
    "FleetResult": "qwenfit.fleet",
    "QwenfitError": "qwenfit.errors",
    "SpecError": "qwenfit.errors",
    "UsageError": "qwenfit.errors",
    "UnknownModelError": "qwenfit.errors",
    "UnsupportedError": "qwenfit.errors",
    "ProbeError": "qwenfit.errors",
    "NoFitError": "qwenfit.errors",
    "BadFileError": "qwenfit.errors",
}

__all__ = [
    "GPU",
    "BadFileError",
    "CheckResult",
    "Estimate",
    "Fit",
    "FleetResult",
    "LaunchCommand",
    "LaunchPlan",
    "Machine",
    "ModelSpec",
    "NoFitError",
    "Options",
    "Part",
    "ProbeError",
    "QwenfitError",
    "RecommendResult",
    "Recommendation",
    "SpecError",
    "SpecTable",
    "SweepResult",
    "UnknownModelError",
    "UnsupportedError",
    "UsageError",
    "__version__",
    "check",
    "check_fit",
    "estimate",
    "fleet",
    "launch_command",
    "launch_plan",
    "load_machine",
    "load_specs",
    "max_context",
    "probe",
    "recommend",
    "resolve_model",
    "sweep",
    "with_overrides",
]

if TYPE_CHECKING:
    from qwenfit.errors import (
        BadFileError,
        NoFitError,
        ProbeError,
        QwenfitError,
        SpecError,
        UnknownModelError,
        UnsupportedError,
        UsageError,
    )
    from qwenfit.fit import CheckResult, Fit, check, check_fit
    from qwenfit.fleet import FleetResult, fleet
    from qwenfit.hardware import GPU, Machine, load_machine, probe, with_overrides
    from qwenfit.launch import LaunchCommand, launch_command
    from qwenfit.memory import (
        Estimate,
        Options,
        Part,
        SweepResult,
        estimate,
        max_context,
        sweep,
    )
    from qwenfit.recommender import (
        LaunchPlan,
        Recommendation,
        RecommendResult,
        launch_plan,
        recommend,
    )
    from qwenfit.specs import ModelSpec, SpecTable, load_specs, resolve_model

    __version__: str


def __getattr__(name: str) -> object:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("qwenfit")
        except PackageNotFoundError:
            return "0+unknown"
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qwenfit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
