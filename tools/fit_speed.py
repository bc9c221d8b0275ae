"""Fit the speed model to `data/speed_measurements.json` and write `data/speed_calibration.json`.

    python tools/fit_speed.py            # rewrite the shipped calibration
    python tools/fit_speed.py --check    # exit 1 when the shipped file is stale

Estimates read the written file and never fit at run time; `tests/test_speed_calibration.py`
refits and requires the shipped file (memory/speed_fit.py describes the fit).
"""

from __future__ import annotations

import sys
from pathlib import Path

from qwenfit.memory.calibration import measurements
from qwenfit.memory.speed_fit import fit

OUT = Path(__file__).resolve().parents[1] / "data" / "speed_calibration.json"


def text() -> str:
    return fit(measurements()).model_dump_json(indent=1) + "\n"


def main() -> int:
    new = text()
    if "--check" in sys.argv[1:]:
        stale = not OUT.is_file() or OUT.read_text(encoding="utf-8") != new
        print("stale: run python tools/fit_speed.py" if stale else "up to date")
        return 1 if stale else 0
    OUT.write_text(new, encoding="utf-8")
    print(f"wrote {OUT.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
