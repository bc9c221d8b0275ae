"""qwenfit against the published real-world measurements (benchmarks/realworld/)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "realworld"))


def run(smoke: bool) -> dict[str, Any]:
    """Every record compared (leave-one-out for calibration points); smoke runs all too, it
    takes a few seconds."""
    import validate

    del smoke
    return validate.run()  # type: ignore[no-any-return]


def quantities() -> tuple[str, ...]:
    """The quantities the real-world set compares, in the validator's order."""
    import validate

    return validate.QUANTITIES  # type: ignore[no-any-return]
