"""The real-world decode cases through whichllm and llmfit beside qwenfit's
leave-one-device-out figure (issue 25).

Peers are asked for the same model, quant and catalog GPU (whichllm: its `estimate_tok_per_sec`
via benchmarks/peers/drivers/whichllm_driver.py; llmfit: `llmfit --profile ... plan`, as
benchmarks/report/speed.py does), where their venvs exist (benchmarks/peers/setup.sh; set
QWENFIT_PEERS_DIR). Neither peer takes the KV depth or the runtime, so they are asked for the
record's model on its GPU as it is.

    QWENFIT_PEERS_DIR=... python benchmarks/realworld/peers.py [--json] [--write-docs]

--write-docs puts the goals table (validate.py's leave-one-device-out and in-sample figures, per
device class and runtime) and the peers' columns in docs/benchmarks.md between its markers.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "peers"))

import validate  # noqa: E402
from report.common import SECTIONS, write_section  # noqa: E402


def cases() -> list[dict[str, Any]]:
    """Decode records on catalog GPUs or the CPU rig, with qwenfit's LODO figure."""
    out = []
    for r in validate.records():
        if "decode_tps" not in r["measured"]:
            continue
        dev = r["device"] or {}
        row = validate.compare(r)
        v = row["values"]["decode"]
        out.append(
            {
                "id": r["id"],
                "model": r["model"],
                "quant": r["quant"],
                "runtime": r["runtime"],
                "device": "cpu" if dev.get("cpu") else "gpu",
                "gpu": dev.get("gpu"),
                "context": r["settings"].get("context") or 4096,
                "kv_cache": r["settings"].get("kv_cache") or "f16",
                "bandwidth_bytes_per_s": dev.get("bandwidth_bytes_per_s"),
                "tokens_per_s": r["measured"]["decode_tps"],
                "qwenfit": v["qwenfit"],
            }
        )
    return out


def run() -> dict[str, Any]:
    import _common as c
    from report.speed import llmfit_tps, whichllm_tps

    rows = cases()
    tools = ["qwenfit"]
    askable = [r for r in rows if r["gpu"] or r["device"] == "cpu"]
    ggufs = [r for r in askable if not r["quant"].startswith(("mlx", "gptq", "fp8"))]
    with tempfile.TemporaryDirectory(prefix="qwenfit-rw-peers-") as tmp:
        for tool, fn in (("whichllm", whichllm_tps), ("llmfit", llmfit_tps)):
            if not c.venv_bin(tool).parent.exists():
                continue
            try:
                fn(ggufs, Path(tmp))
            except Exception as e:  # a peer that cannot run here is reported, not fatal
                print(f"{tool}: not run ({str(e).splitlines()[0][:120]})", file=sys.stderr)
                continue
            tools.append(tool)
    summary: dict[str, dict[str, Any]] = {}
    shared = [r for r in ggufs if all(r.get(t) for t in tools)]
    for size in ("all", "0.8B-9B", "27B", "35B-A3B"):
        cut = [r for r in shared if size == "all" or _size(r["model"]) == size]
        for t in tools:
            errs = [abs(100 * (r[t] - r["tokens_per_s"]) / r["tokens_per_s"]) for r in cut]
            if errs:
                summary[f"{t}, {size}"] = {
                    "n": len(errs),
                    "median_abs": statistics.median(errs),
                    "within_35": sum(e <= 35 for e in errs) / len(errs),
                }
    return {"rows": rows, "tools": tools, "summary": summary}


def _size(model: str) -> str:
    size = model.split("-", 1)[1].upper()
    return "0.8B-9B" if size in ("0.8B", "2B", "4B", "9B") else size


BEGIN, END = SECTIONS["speed-goals"]


def _row(name: str, s: dict[str, Any]) -> str:
    return (
        f"| {name} | {s['n']} | {s['median_abs']:.1f} | {s['within_35']:.0%} | {s['max_abs']:.0f} |"
    )


def markdown(peers: dict[str, Any]) -> str:
    """The issue-25 goals section: validate.py's figures, then the peers on shared cases."""
    v = validate.run()
    goals = {"decode": (15, 0.85), "prefill": (25, 0.80)}
    lines = [
        BEGIN,
        "## 6. Speed goals (issue 25): leave-one-device-out",
        "",
        f"`python benchmarks/realworld/validate.py`: {v['speed_points']} speed "
        f"points (published runs, and the project's own llama.cpp CPU rig) on {v['devices']} "
        "devices (`benchmarks/realworld/measurements.json`). "
        "LODO: each point predicted by a calibration refitted without any point of its "
        "device (`qwenfit.memory.speed_fit.without_device`); in-sample: the shipped "
        "`data/speed_calibration.json`. Prefill over stated prompt lengths.",
        "",
        "| quantity | n | median abs % | within 35 % | max abs % | goal | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for q, (med, share) in goals.items():
        for label, summ in (("LODO", v["summary"]), ("in-sample", v["summary_in_sample"])):
            s = summ[q]
            met = s["median_abs"] <= med and s["within_35"] >= share
            lines.append(
                f"| {q} ({label}) | {s['n']} | {s['median_abs']:.1f} | "
                f"{s['within_35']:.0%} | {s['max_abs']:.0f} | median <= {med} %, "
                f">= {share:.0%} within 35 % | {'yes' if met else 'no'} |"
            )
    for title, key in (("device class", "by_class"), ("runtime", "by_runtime")):
        lines += [
            "",
            f"LODO per {title}:",
            "",
            f"| {title} | n | median abs % | within 35 % | max abs % |",
            "|---|---|---|---|---|",
        ]
        for q, groups in v[key].items():
            lines += [_row(f"{q}: {g}", s) for g, s in groups.items()]
    if len(peers["tools"]) > 1:
        lines += [
            "",
            "Decode on the cases every tool can be asked (GGUF on a catalog GPU or "
            "the CPU rig; the peers take neither the KV depth nor the runtime; qwenfit "
            "LODO):",
            "",
            "| tool, model sizes | n | median abs % | within 35 % |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {t} | {s['n']} | {s['median_abs']:.1f} | {s['within_35']:.0%} |"
            for t, s in peers["summary"].items()
        ]
    lines += ["", END]
    return "\n".join(lines) + "\n"


def write_docs(peers: dict[str, Any]) -> None:
    write_section("speed-goals", markdown(peers))


def main() -> None:
    data = run()
    if "--write-docs" in sys.argv:
        write_docs(data)
    if "--json" in sys.argv:
        print(json.dumps(data, indent=1, default=str))
        return
    for t, s in data["summary"].items():
        print(
            f"{t:20} n={s['n']:3} median |err| {s['median_abs']:5.1f}%  "
            f"within 35% {s['within_35']:.0%}"
        )


if __name__ == "__main__":
    main()
