"""The benchmark runner's smoke mode still runs, so benchmarks/ cannot rot unnoticed.

`benchmarks/run_all.py --smoke` times qwenfit's commands, compares its estimates with the
measured llama.cpp tables, predicts the published speeds leave-one-out and checks its picks;
no peers, no plots, no network. The full run (peers, plots, docs/benchmarks.md) is manual.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_run_all_smoke(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_COLOR="1")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = out.read_text()
    for heading in (
        "## Targets",
        "## 1. Start-up",
        "## 2. Memory accuracy",
        "## 3. Decode speed",
        "## 4. Recommendation quality",
        "## 5. Real-world validation set",
    ):
        assert heading in doc
    data = json.loads(out.with_suffix(".json").read_text())
    assert all(r["ok"] for r in data["startup"]["rows"]), data["startup"]["rows"]
    assert {r["tool"] for r in data["accuracy"]["rows"]} == {"qwenfit"}
    assert len(data["accuracy"]["rows"]) >= 32  # 8 sizes x 4 contexts
    assert all(
        r["qwenfit_loo"] is not None for r in data["speed"]["rows"] if r["kind"] == "calibration"
    )
    assert len(data["picks"]["rows"]) == 9
    assert {"kv", "state", "compute", "decode", "prefill"} <= set(data["realworld"]["summary"])
    assert not list(tmp_path.glob("*.png"))
    assert seconds < 60, f"smoke run took {seconds:.0f} s"
