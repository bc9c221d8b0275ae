"""Whole-process wall time and peak RSS of qwenfit's commands, `python -c pass` and the peers.

Every command runs once as a warm-up, then `runs` rounds; each round runs every command once,
the order rotated and reversed every other round (A/B alternation), so machine drift hits all
commands alike. Peak RSS is the child's own ru_maxrss from os.wait4.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report.common import REPO

ESTIMATE_ARGS = [
    "estimate",
    "qwen3.5-9b",
    "--quant",
    "q4_k_m",
    "--context",
    "32k",
    "--runtime",
    "llama.cpp",
    "--json",
]
ESTIMATE_LABEL = (
    "qwenfit estimate qwen3.5-9b --quant q4_k_m --context 32k --runtime llama.cpp --json"
)
VLLM_WIZARD_PLAN = (
    "vllm-wizard plan --model <9B flat config> --max-model-len 32768 --gpu 'RTX 4090' --json"
)
# (what the peer command answers, qwenfit's command that answers the same question)
EQUIVALENT = {
    "llmfit recommend -n 5 --json": "qwenfit recommend --json",
    "whichllm --json -n 5 (recommend)": "qwenfit recommend --json",
    "llmfit system --json": "qwenfit probe --json",
    "whichllm hardware": "qwenfit probe --json",
    "vllm-wizard detect": "qwenfit probe --json",
    "llmfit plan Qwen/Qwen3.5-9B --context 32768 --quant Q4_K_M --json": ESTIMATE_LABEL,
    "whichllm plan Qwen/Qwen3.5-9B -c 32k --json": ESTIMATE_LABEL,
    VLLM_WIZARD_PLAN: ESTIMATE_LABEL,
    "hf_mem.run() 9B 32k, local Hub stand-in (driver)": ESTIMATE_LABEL,
    "accelerate gather_data 9B, Hub look-up stubbed (driver)": ESTIMATE_LABEL,
}


def qwenfit_python(smoke: bool = False) -> Path:
    """The interpreter whose qwenfit is timed: this one for smoke runs (CI), else
    $QWENFIT_VENV or the dev venv when present (as benchmarks/peers/startup.py)."""
    if smoke:
        return Path(sys.executable)
    env = os.environ.get("QWENFIT_VENV")
    if env:
        return Path(env) / "bin" / "python"
    dev = REPO / ".venv" / "bin" / "python"
    return dev if dev.exists() else Path(sys.executable)


def qwenfit_commands(py: Path) -> list[dict[str, Any]]:
    """Baseline and qwenfit's own commands (the `qwenfit` script beside the interpreter)."""
    exe = py.parent / "qwenfit"
    qf = [str(exe)] if exe.exists() else [str(py), "-m", "qwenfit"]
    return [
        {"tool": "baseline", "label": "python -c pass", "argv": [str(py), "-c", "pass"]},
        {"tool": "baseline", "label": FLOOR_LABEL, "argv": [str(py), "-c", FLOOR]},
        {
            "tool": "qwenfit",
            "label": "python -c 'import qwenfit'",
            "argv": [str(py), "-c", "import qwenfit"],
        },
        {"tool": "qwenfit", "label": "qwenfit probe --json", "argv": [*qf, "probe", "--json"]},
        {"tool": "qwenfit", "label": ESTIMATE_LABEL, "argv": [*qf, *ESTIMATE_ARGS]},
        {
            "tool": "qwenfit",
            "label": "qwenfit recommend --json",
            "argv": [*qf, "recommend", "--json"],
        },
        {"tool": "qwenfit", "label": CHECK_LABEL, "argv": [*qf, *CHECK_LABEL.split()[1:]]},
    ]


CHECK_LABEL = "qwenfit check 9b --vram 24GB --json"
# The floor a command can start from: the interpreter and the three libraries every command
# needs loaded (issue 23 measures start-up as a ratio to it, CPU time of the whole process).
FLOOR = "import pydantic, click, psutil, json; from pydantic import BaseModel"
FLOOR_LABEL = f"python -c '{FLOOR}'"
# Single-machine plans timed in-process: (label, with_overrides kwargs, recommend kwargs).
PLANS = [
    ("llama.cpp, RTX 4090 + 64 GB", {"gpu": "RTX 4090", "ram": "64GB"}, {"runtime": "llama.cpp"}),
    ("ollama, RTX 4090 + 64 GB", {"gpu": "RTX 4090", "ram": "64GB"}, {"runtime": "ollama"}),
    ("default runtime, RTX 3060 + 32 GB", {"gpu": "RTX 3060", "ram": "32GB"}, {}),
    ("vllm, H100 + 256 GB", {"gpu": "H100", "ram": "256GB"}, {"runtime": "vllm"}),
    (
        "llama.cpp, CPU only, 32 GB",
        {"vram": "0", "ram": "32GB", "ram_bandwidth": "60GB/s"},
        {"runtime": "llama.cpp"},
    ),
    ("llama.cpp, M4 Max + 128 GB", {"gpu": "M4 Max", "ram": "128GB"}, {"runtime": "llama.cpp"}),
]
_INPROCESS = """
import json, statistics, sys, time
from qwenfit import load_specs, recommend, with_overrides
load_specs()
out = []
for label, hw, kw in json.loads(sys.argv[1]):
    m = with_overrides(None, **hw)
    recommend(m, **kw)  # warm: first-use caches (calibration, per-layer bytes)
    ts = []
    for _ in range(int(sys.argv[2])):
        t = time.perf_counter(); recommend(m, **kw); ts.append(time.perf_counter() - t)
    out.append({"plan": label, "median_ms": 1000 * statistics.median(ts),
                "min_ms": 1000 * min(ts)})
print(json.dumps(out))
"""


def in_process(py: Path, runs: int) -> list[dict[str, Any]]:
    """`recommend()` wall time inside one warm process, per plan (median of `runs`)."""
    proc = subprocess.run(
        [str(py), "-c", _INPROCESS, json.dumps(PLANS), str(runs)],
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[dict[str, Any]] = json.loads(proc.stdout)
    return rows


def peer_commands(tmp: Path) -> list[dict[str, Any]]:
    """The peers' closest commands, as benchmarks/peers/startup.py defines them."""
    import _common as c
    import startup as peers_startup

    cache_home = tmp / "xdg-cache"
    if c.venv_python("whichllm").exists():
        c.seed_whichllm_cache(cache_home)
    # Peers whose venv is not built here (benchmarks/peers/setup.sh) are left out, not failed.
    return [
        cmd
        for cmd in peers_startup.commands(tmp, cache_home)
        if cmd["tool"] not in ("baseline", "qwenfit") and Path(cmd["argv"][0]).exists()
    ]


def run_once(cmd: dict[str, Any]) -> tuple[float, int, int, float]:
    """Run one command: wall seconds, peak RSS bytes of that process, exit code, CPU seconds
    (user + system, from the kernel's accounting of the finished child)."""
    env = dict(os.environ, COLUMNS="10000", NO_COLOR="1")
    env.update(cmd.get("env", {}))
    data = Path(cmd["stdin"]).read_bytes() if cmd.get("stdin") else None
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd["argv"],
        stdin=subprocess.PIPE if data else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    if data is not None and proc.stdin is not None:
        proc.stdin.write(data)
        proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    return wall, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status), cpu


def measure(cmds: list[dict[str, Any]], runs: int) -> list[dict[str, Any]]:
    """Warm up, then `runs` interleaved rounds; one summary row per command."""
    warm = [run_once(cmd) for cmd in cmds]
    samples: list[list[tuple[float, int, int, float]]] = [[] for _ in cmds]
    for rnd in range(runs):
        order = list(range(len(cmds)))
        order = order[rnd % len(order) :] + order[: rnd % len(order)]
        if rnd % 2:
            order.reverse()
        for i in order:
            samples[i].append(run_once(cmds[i]))
    rows = []
    for cmd, w, s in zip(cmds, warm, samples, strict=True):
        walls = [x[0] for x in s]
        rcs = sorted({x[2] for x in s})
        rows.append(
            {
                "tool": cmd["tool"],
                "command": cmd["label"],
                "median_s": statistics.median(walls),
                "min_s": min(walls),
                "max_s": max(walls),
                "median_cpu_s": statistics.median(x[3] for x in s),
                "peak_rss_bytes": max(x[1] for x in s),
                "warmup_s": w[0],
                "runs": len(walls),
                "exit_codes": rcs,
                "ok": rcs == [0],
                "note": cmd.get("note", ""),
            }
        )
    base = next(r["median_s"] for r in rows if r["command"] == "python -c pass")
    floor = next((r["median_cpu_s"] for r in rows if r["command"] == FLOOR_LABEL), None)
    by_label = {r["command"]: r for r in rows}
    for r in rows:
        r["x_python"] = r["median_s"] / base
        r["x_floor_cpu"] = r["median_cpu_s"] / floor if floor else None
        twin = by_label.get(EQUIVALENT.get(r["command"], ""))
        r["qwenfit_equivalent"] = twin["command"] if twin else None
        r["x_qwenfit"] = r["median_s"] / twin["median_s"] if twin else None
    return rows


_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def importtime(py: Path, argv: list[str], runs: int) -> dict[str, Any]:
    """`python -X importtime` of one command: median self-time per top-level package (ms)."""
    per_run: list[dict[str, float]] = []
    walls = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        proc = subprocess.run(
            [str(py), "-X", "importtime", *argv], capture_output=True, text=True, check=False
        )
        walls.append(time.perf_counter() - start)
        agg: dict[str, float] = {}
        for m in _LINE.finditer(proc.stderr):
            top = m.group(4).split(".")[0]
            agg[top] = agg.get(top, 0.0) + int(m.group(1)) / 1000
        per_run.append(agg)
    per_run, walls = per_run[1:], walls[1:]  # the first run is the warm-up
    names = {k for run in per_run for k in run}
    med = {k: statistics.median(run.get(k, 0.0) for run in per_run) for k in names}
    total = statistics.median(sum(run.values()) for run in per_run)
    top = sorted(med.items(), key=lambda kv: -kv[1])
    return {
        "argv": " ".join(argv),
        "total_import_ms": total,
        "wall_ms": 1000 * statistics.median(walls),
        "by_package_ms": dict(top),
    }


def compiled(py: Path) -> None:
    """Byte-compile the qwenfit that `py` imports, as pip does when it installs a wheel. An
    editable checkout run with PYTHONDONTWRITEBYTECODE set would otherwise compile every
    module it changed since its last .pyc on every timed run (18 ms of a 200 ms command)."""
    code = (
        "import compileall, os, qwenfit; "
        "compileall.compile_dir(os.path.dirname(qwenfit.__file__), quiet=1)"
    )
    subprocess.run([str(py), "-c", code], check=True, timeout=300)


def run(smoke: bool, runs: int) -> dict[str, Any]:
    """Time qwenfit (and, unless smoke, the peers); attribute qwenfit's import time."""
    py = qwenfit_python(smoke)
    compiled(py)
    with tempfile.TemporaryDirectory(prefix="qwenfit-bench-") as tmp:
        cmds = qwenfit_commands(py)
        if not smoke:
            cmds += peer_commands(Path(tmp))
        rows = measure(cmds, runs)
    attribution = [
        importtime(py, ["-m", "qwenfit", "recommend", "--json"], 1 if smoke else 5),
        importtime(py, ["-c", "import qwenfit"], 1 if smoke else 5),
    ]
    return {
        "python": str(py),
        "runs": runs,
        "rows": rows,
        "importtime": attribution,
        "in_process": in_process(py, 2 if smoke else 15),
        "load_average": os.getloadavg(),
    }
