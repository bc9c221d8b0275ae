"""Stage 2, specs: what the models are.

`table` is the reviewed spec table (`data/model_specs.json`) and its records (`sampling`: each
model card's sampling presets); `arch` the architecture arithmetic (parameters, KV and
recurrent-state sizes) over config numbers alone; `checkpoints` reads any local or Hub
checkpoint into a spec row.
"""

from __future__ import annotations

from qwenfit.lazy import attach

TYPE_CHECKING = False
if TYPE_CHECKING:
    from qwenfit.specs.architecture import Architecture, VisionConfig
    from qwenfit.specs.checkpoints.refresh import refresh_specs
    from qwenfit.specs.checkpoints.resolve import resolve_model
    from qwenfit.specs.table import ModelSpec, SpecTable, load_specs

__all__ = [
    "Architecture",
    "ModelSpec",
    "SpecTable",
    "VisionConfig",
    "load_specs",
    "refresh_specs",
    "resolve_model",
]
__getattr__, __dir__ = attach(
    __name__,
    {
        "Architecture": ".architecture",
        "VisionConfig": ".architecture",
        "ModelSpec": ".table",
        "SpecTable": ".table",
        "load_specs": ".table",
        "resolve_model": ".checkpoints.resolve",
        "refresh_specs": ".checkpoints.refresh",
    },
)
