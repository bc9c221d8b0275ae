"""Stage 3, memory: what a runtime allocates for one configuration, where, and how fast it runs.

`options` is the settings record every stage passes down; `config` resolves it against the spec
table and lays it out (`layout`); `llamacpp` and `hf` size each part the way those runtimes
allocate it (`runtimes` holds their defaults); `context` solves for the largest context that
fits; `speed` turns the bytes read per token into tokens/s; `estimator` is the entry point.
"""

from __future__ import annotations

from qwenfit.lazy import attach

TYPE_CHECKING = False
if TYPE_CHECKING:
    from qwenfit.memory.context import max_context
    from qwenfit.memory.estimator import estimate, estimate_with
    from qwenfit.memory.options import Options
    from qwenfit.memory.record import Estimate, Layout, Part
    from qwenfit.memory.sweeping import SweepResult, SweepRow, sweep

__all__ = [
    "Estimate",
    "Layout",
    "Options",
    "Part",
    "SweepResult",
    "SweepRow",
    "estimate",
    "estimate_with",
    "max_context",
    "sweep",
]
__getattr__, __dir__ = attach(
    __name__,
    {
        "Estimate": ".record",
        "Layout": ".record",
        "Part": ".record",
        "Options": ".options",
        "estimate": ".estimator",
        "estimate_with": ".estimator",
        "max_context": ".context",
        "sweep": ".sweeping",
        "SweepResult": ".sweeping",
        "SweepRow": ".sweeping",
    },
)
