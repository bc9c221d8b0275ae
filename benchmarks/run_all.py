"""Run every qwenfit benchmark and write docs/benchmarks.md with its PNG plots.

    python benchmarks/run_all.py            # full: peers too (needs benchmarks/peers/setup.sh
                                            # and matplotlib), ~6 min on 2 cores
    python benchmarks/run_all.py --smoke    # qwenfit only, no plots, a few seconds, temp dir

Parts: start-up (report/startup.py), memory accuracy against llama.cpp (report/accuracy.py),
decode and prefill speed against published runs (report/speed.py), picks per machine
(report/picks.py), the real-world validation set (report/realworld.py, benchmarks/realworld/).
The full run first refreshes the peers' raw answers (benchmarks/peers/*.py) unless
--reuse-peers, and saves every number behind the document in benchmarks/results/report.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import accuracy, markdown, picks, realworld, speed, startup
from report.common import PEERS, REPO, RESULTS, measured


def refresh_peers() -> None:
    """Re-run the peer rig's estimate and pick collection (writes benchmarks/results)."""
    for script in ("accuracy_peers.py", "picks.py"):
        print(f"[peers] {script} ...", flush=True)
        subprocess.run([sys.executable, str(PEERS / script)], check=True, stdout=subprocess.DEVNULL)


def peer_versions() -> str:
    """'tool x.y' for each peer, from the peer rig."""
    import _common as c

    names = ("llmfit", "whichllm", "hf-mem", "vllm-wizard", "accelerate")
    return ", ".join(
        f"{t} {c.tool_version(t)}"
        if c.venv_python(t).exists()
        else f"{t} (not installed here: its figures are the saved ones)"
        for t in names
    )


def write(out: Path, data: dict[str, Any], plots: bool) -> None:
    """The Markdown page and, unless smoke, its PNGs in img/ beside it."""
    imgs: dict[str, str] = {}
    if plots:
        from report import plots as p

        img_dir = out.parent / "img"
        rel = os.path.relpath(img_dir, out.parent)
        p.startup(data["startup"]["rows"], img_dir / "bench_startup.png")
        by_ctx = {
            t: {int(c): v for c, v in pts.items()}
            for t, pts in data["accuracy"]["by_context"].items()
        }
        p.accuracy(by_ctx, img_dir / "bench_accuracy.png")
        p.speed(data["speed"]["rows"], img_dir / "bench_speed.png")
        p.realworld(data["realworld"]["rows"], img_dir / "bench_realworld.png")
        imgs = {k: f"{rel}/bench_{k}.png" for k in ("startup", "accuracy", "speed", "realworld")}
    out.parent.mkdir(parents=True, exist_ok=True)
    # Sections other rigs write between their own markers (benchmarks/serve_load.py) are kept.
    kept = markdown.kept_sections(out.read_text() if out.exists() else "")
    out.write_text(markdown.render(data, imgs) + kept)


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the parts, write the document (and plots unless smoke)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="qwenfit only, no peers, no plots")
    ap.add_argument(
        "--out", type=Path, help="Markdown file (default docs/benchmarks.md; smoke: a temp dir)"
    )
    ap.add_argument("--runs", type=int, help="timed rounds per command (default 10; smoke 2)")
    ap.add_argument(
        "--reuse-peers", action="store_true", help="use benchmarks/results/peers_*.json as they are"
    )
    ap.add_argument(
        "--reuse-startup",
        action="store_true",
        help="take the start-up timings from benchmarks/results/report.json (they "
        "time the peers' commands, which need benchmarks/peers/setup.sh)",
    )
    ap.add_argument(
        "--from-json",
        type=Path,
        help="re-render the page and plots from a saved "
        "benchmarks/results/report.json, measuring nothing",
    )
    args = ap.parse_args(argv)
    if args.from_json:
        data = json.loads(args.from_json.read_text())
        out = args.out or REPO / "docs" / "benchmarks.md"
        write(out, data, plots=True)
        print(f"re-rendered {out} from {args.from_json}")
        return 0
    t0 = time.perf_counter()
    runs = args.runs or (2 if args.smoke else 10)
    out = args.out or (
        Path(tempfile.mkdtemp(prefix="qwenfit-bench-")) / "benchmarks.md"
        if args.smoke
        else REPO / "docs" / "benchmarks.md"
    )
    if not args.smoke and not args.reuse_peers:
        refresh_peers()
    data: dict[str, Any]
    if args.reuse_startup:
        print("[startup] reused from benchmarks/results/report.json", flush=True)
        previous = json.loads((RESULTS / "report.json").read_text())
        data = {"startup": previous["startup"]}
    else:
        print("[startup] timing ...", flush=True)
        data = {"startup": startup.run(args.smoke, runs)}
    print("[accuracy] ...", flush=True)
    data["accuracy"] = accuracy.run(args.smoke)
    print("[speed] ...", flush=True)
    data["speed"] = speed.run(args.smoke)
    print("[realworld] ...", flush=True)
    data["realworld"] = realworld.run(args.smoke)
    print("[picks] ...", flush=True)
    data["picks"] = picks.run(args.smoke)
    data["targets"] = markdown.targets(data["startup"]) + markdown.targets_18(data)
    data["meta"] = {
        "command": "python benchmarks/run_all.py"
        + (" --smoke" if args.smoke else "")
        + (" --reuse-peers" if args.reuse_peers else "")
        + (" --reuse-startup" if args.reuse_startup else ""),
        "date": dt.date.today().isoformat(),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}, no GPU",
        "versions": "none (smoke run)" if args.smoke else peer_versions(),
        "llamacpp_commit": measured("llamacpp_memory")["llama_cpp_commit"][:10],
    }
    data["meta"]["seconds"] = time.perf_counter() - t0
    write(out, data, plots=not args.smoke)
    raw = out.with_suffix(".json") if args.smoke else RESULTS / "report.json"
    raw.write_text(json.dumps(data, indent=1, default=str) + "\n")
    for t in data["targets"]:
        state = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        print(f"[target] {state:6} {t['target']}: {t['measured']}")
    print(f"wrote {out} and {raw} in {data['meta']['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
