"""Whole-process wall time and peak RSS of qwenfit and the peers' closest commands.

Each command runs once as a warm-up, then N times; runs are interleaved round-robin with the
order rotated every round (A/B alternation), so drift hits every command alike. Peak RSS per
process comes from os.wait4's rusage (ru_maxrss, KiB on Linux) of that child alone.
Writes benchmarks/results/startup.json. Offline. Run: python benchmarks/peers/startup.py -n 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c


def commands(tmp: Path, cache_home: Path) -> list[dict[str, Any]]:
    """The commands to time: (tool, label, argv, env, note)."""
    qf_py = str(c.QWENFIT_VENV / "bin" / "python")
    qf = str(c.QWENFIT_VENV / "bin" / "qwenfit")
    llmfit = str(c.venv_bin("llmfit"))
    which = str(c.venv_bin("whichllm"))
    vw = str(c.venv_bin("vllm-wizard"))
    configs = c.write_configs(tmp / "configs")
    flat9 = str(configs["qwen3.5-9b"]["flat"])
    spec9 = next(s for s in c.specs() if s["name"] == "qwen3.5-9b")
    art = c.artifact(spec9, "bf16", "safetensors")
    hf_req = tmp / "hfmem_request.json"
    hf_req.write_text(
        json.dumps(
            {
                "cases": [
                    {
                        "repo": "Qwen/Qwen3.5-9B",
                        "kind": "safetensors",
                        "context": 32768,
                        "config_path": str(configs["qwen3.5-9b"]["official"] / "config.json"),
                        "components": {
                            "model.language_model": art["text_bytes"],
                            "model.visual": art["vision_bytes"],
                            "mtp": art["mtp_bytes"],
                        },
                    }
                ]
            }
        )
    )
    acc_req = tmp / "accelerate_request.json"
    acc_req.write_text(
        json.dumps(
            {
                "cases": [{"model": "qwen3.5-9b", "path": str(configs["qwen3.5-9b"]["official"])}],
                "dtypes": ["float32", "float16", "int8", "int4"],
            }
        )
    )
    wenv = {"XDG_CACHE_HOME": str(cache_home)}
    nd = "--no-dashboard"
    return [
        {"tool": "baseline", "label": "python -c pass", "argv": [qf_py, "-c", "pass"]},
        {
            "tool": "qwenfit",
            "label": "python -c 'import qwenfit'",
            "argv": [qf_py, "-c", "import qwenfit"],
        },
        {"tool": "qwenfit", "label": "qwenfit probe --json", "argv": [qf, "probe", "--json"]},
        {
            "tool": "qwenfit",
            "label": "qwenfit estimate qwen3.5-9b --quant q4_k_m --context 32k "
            "--runtime llama.cpp --json",
            "argv": [
                qf,
                "estimate",
                "qwen3.5-9b",
                "--quant",
                "q4_k_m",
                "--context",
                "32k",
                "--runtime",
                "llama.cpp",
                "--json",
            ],
        },
        {
            "tool": "qwenfit",
            "label": "qwenfit recommend --json",
            "argv": [qf, "recommend", "--json"],
        },
        {
            "tool": "llmfit",
            "label": "llmfit system --json",
            "argv": [llmfit, "system", "--json", nd],
        },
        {
            "tool": "llmfit",
            "label": "llmfit plan Qwen/Qwen3.5-9B --context 32768 --quant Q4_K_M --json",
            "argv": [
                llmfit,
                "plan",
                "Qwen/Qwen3.5-9B",
                "--context",
                "32768",
                "--quant",
                "Q4_K_M",
                "--json",
                nd,
            ],
        },
        {
            "tool": "llmfit",
            "label": "llmfit recommend -n 5 --json",
            "argv": [llmfit, "recommend", "-n", "5", "--json", nd],
        },
        {
            "tool": "whichllm",
            "label": "whichllm hardware",
            "argv": [which, "hardware"],
            "env": wenv,
        },
        {
            "tool": "whichllm",
            "label": "whichllm plan Qwen/Qwen3.5-9B -c 32k --json",
            "argv": [which, "plan", "Qwen/Qwen3.5-9B", "-c", "32k", "--json"],
            "env": wenv,
            "note": "model cache seeded offline",
        },
        {
            "tool": "whichllm",
            "label": "whichllm --json -n 5 (recommend)",
            "argv": [which, "--json", "-n", "5"],
            "env": wenv,
            "note": "model cache seeded offline; the warm-up run's failed leaderboard fetches "
            "(~16 s of DNS failures) leave a fallback benchmark cache the timed runs use",
        },
        {
            "tool": "hf-mem",
            "label": "hf-mem --help",
            "argv": [str(c.venv_bin("hf-mem")), "--help"],
            "note": "the real command needs the Hub",
        },
        {
            "tool": "hf-mem",
            "label": "hf_mem.run() 9B 32k, local Hub stand-in (driver)",
            "argv": [str(c.venv_python("hf-mem")), str(c.DRIVERS / "hfmem_driver.py")],
            "stdin": hf_req,
            "note": "drivers/hfmem_driver.py: the offline equivalent of "
            "`hf-mem --model-id Qwen/Qwen3.5-9B --experimental "
            "--max-model-len 32768`",
        },
        {"tool": "vllm-wizard", "label": "vllm-wizard detect", "argv": [vw, "detect"]},
        {
            "tool": "vllm-wizard",
            "label": "vllm-wizard plan --model <9B flat config> "
            "--max-model-len 32768 --gpu 'RTX 4090' --json",
            "argv": [
                vw,
                "plan",
                "--model",
                flat9,
                "--max-model-len",
                "32768",
                "--gpu",
                "RTX 4090",
                "--json",
            ],
        },
        {
            "tool": "accelerate",
            "label": "accelerate estimate-memory --help",
            "argv": [str(c.venv_bin("accelerate")), "estimate-memory", "--help"],
        },
        {
            "tool": "accelerate",
            "label": "accelerate gather_data 9B, Hub look-up stubbed (driver)",
            "argv": [str(c.venv_python("accelerate")), str(c.DRIVERS / "accelerate_driver.py")],
            "stdin": acc_req,
            "note": "drivers/accelerate_driver.py: the offline equivalent of "
            "`accelerate estimate-memory Qwen/Qwen3.5-9B`",
        },
    ]


def run_once(cmd: dict[str, Any]) -> tuple[float, int, int]:
    """Run one command; return wall seconds, peak RSS bytes of that process, exit code."""
    env = dict(os.environ)
    env.update({"COLUMNS": "10000", "NO_COLOR": "1"})
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
    if data:
        proc.stdin.write(data)
        proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss * 1024, proc.returncode


def main() -> None:
    """Warm up, time N interleaved rounds, write the medians."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=c.RESULTS_DIR / "startup.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="qwenfit-startup-") as tmp:
        tmp_path = Path(tmp)
        cache_home = tmp_path / "xdg-cache"
        c.seed_whichllm_cache(cache_home)
        cmds = commands(tmp_path, cache_home)
        samples: dict[int, list[tuple[float, int, int]]] = {i: [] for i in range(len(cmds))}
        warm = {i: run_once(cmd) for i, cmd in enumerate(cmds)}
        for rnd in range(args.runs):
            order = list(range(len(cmds)))
            shift = rnd % len(order)
            order = order[shift:] + order[:shift]
            if rnd % 2:
                order.reverse()
            for i in order:
                samples[i].append(run_once(cmds[i]))
    rows = []
    for i, cmd in enumerate(cmds):
        walls = [s[0] for s in samples[i]]
        rss = [s[1] for s in samples[i]]
        rcs = sorted({s[2] for s in samples[i]})
        rows.append(
            {
                "tool": cmd["tool"],
                "command": cmd["label"],
                "median_s": round(statistics.median(walls), 4),
                "min_s": round(min(walls), 4),
                "max_s": round(max(walls), 4),
                "peak_rss_bytes": max(rss),
                "median_rss_bytes": int(statistics.median(rss)),
                "warmup_s": round(warm[i][0], 4),
                "exit_codes": rcs,
                "ok": rcs == [0],
                "note": cmd.get("note", ""),
            }
        )
        if rcs != [0]:
            print(f"WARNING: {cmd['label']} exited {rcs}: its timing is no valid run")
        print(
            f"{cmd['tool']:12} {statistics.median(walls):7.3f} s "
            f"{max(rss) / 2**20:7.1f} MiB  {cmd['label']}"
        )
    c.write_json(
        args.out,
        {
            "generator": "benchmarks/peers/startup.py",
            "method": f"1 warm-up + {args.runs} runs per command, interleaved round-robin with "
            "the order rotated (and reversed every other round); wall = Popen to "
            "wait4; peak RSS = that child's ru_maxrss",
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "versions": {
                t: c.tool_version(t)
                for t in ("llmfit", "whichllm", "hf-mem", "vllm-wizard", "accelerate")
            },
            "results": rows,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
