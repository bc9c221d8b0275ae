"""qwenfit's llama.cpp estimate against llama-server's own log, for every run of the rig.

Reads a fixture made by benchmarks/llamaserver/rig.py and prints, per run, the estimated and
logged MiB of each buffer and the error of the compute buffer and of the total. The estimate is
made for the fixture's build (`llama_cpp_build`), or for another with --build N (e.g. the older
build's graph, to show what the refit changed).
Usage: python benchmarks/llamaserver/accuracy.py [FIXTURE] [--build N] [--markdown]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from qwenfit import estimate
from qwenfit.hardware.machine import Machine
from qwenfit.memory.llamacpp import (
    compute_bytes,
    kv_cells,
    mtp_kv_bytes_per_token,
    mtp_weight_bytes,
    output_bytes,
)
from qwenfit.memory.llamacpp_builds import graph_for
from qwenfit.memory.runtimes import artifact_for
from qwenfit.specs.table import load_specs

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))  # report.common: the page and its sections

from report.common import SECTIONS, write_section  # noqa: E402

FIXTURE = REPO / "tests/fixtures/measured/llamaserver_b11434.json"
CPU_ONLY = Machine(
    source="hypothetical",
    ram_total_bytes=1 << 50,
    ram_available_bytes=1 << 50,
    ram_usable_bytes=1 << 50,
)
MIB = 1 << 20
PARTS = ("weights", "kv", "state", "output", "compute")


def load(path: Path = FIXTURE) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def measured_runs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in doc["records"] if r["ready"] and r["log"]["contexts"]]


def compare(r: dict[str, Any], build: int) -> dict[str, Any]:
    """{part: (estimated MiB, logged MiB)} for the target context (and the MTP draft)."""
    s = r["settings"]
    log = r["log"]
    target = log["contexts"][0]
    settings = target["settings"]
    # what the server resolved: slots and per-slot context from its own log
    slots = int(settings["n_seq_max"])
    unified = settings["kv_unified"] == "true"
    # qwenfit's context is per slot; a unified cache (-np left out) shares n_ctx among slots
    per_slot = int(settings["n_ctx"]) // slots if unified else int(settings["n_ctx_seq"])
    est = estimate(
        s["model"] if s["model"] != "my-9b" else "qwen3.5-9b",
        runtime="llama.cpp",
        quant=s["quant"],
        context=per_slot,
        parallel=slots,
        kv_cache=target["type_k"],
        ubatch=int(settings["n_ubatch"]),
        flash_attn="off" if settings["flash_attn"] in ("disabled", "off") else "on",
        text_only=True,
        mtp=len(log["contexts"]) > 1,
        machine=CPU_ONLY,
        llama_cpp_build=build,
    )
    spec = load_specs().get(est.model)
    art = artifact_for(spec, "llama.cpp", est.quant)
    assert art is not None
    cells = kv_cells(est.context, est.parallel)
    out_b = output_bytes(spec, slots)
    mtp_w = mtp_weight_bytes(spec, art)[0] if est.mtp else 0
    ours = {
        "weights": est.weights_bytes + mtp_w,
        "kv": est.kv_cache_bytes,
        "state": est.linear_state_bytes,
        "output": out_b,
        "compute": est.compute_bytes - out_b,
    }
    if unified:  # one stream: every slot's mask spans all cells (qwenfit emits -np, never this)
        g = graph_for(build)
        ours["compute"] = compute_bytes(
            spec, cells, est.ubatch or 512, bool(est.flash_attn), True, slots, 1, g
        )
    logged = {
        # the file as mapped; CPU_REPACK is the CPU backend's interleaved copy of the Q4_0 /
        # Q4_K tensors, a CPU-only extra qwenfit does not estimate (listed apart)
        "weights": sum(v for k, v in log["model_mib"].items() if k != "CPU_REPACK"),
        "kv": target["kv_mib"],
        "state": target["rs_mib"],
        "output": target["output_mib"],
        "compute": target["compute_exact_mib"] or target["compute_mib"],
    }
    row: dict[str, Any] = {
        "label": r["label"],
        "cells": cells,
        "slots": slots,
        "repack_mib": log["model_mib"].get("CPU_REPACK", 0.0),
    }
    for k in PARTS:
        row[k] = (ours[k] / MIB, logged[k])
    if est.mtp:
        d = log["contexts"][1]
        g = graph_for(build)
        row["draft_kv"] = (mtp_kv_bytes_per_token(spec) * cells / MIB, d["kv_mib"])
        row["draft_output"] = (out_b / MIB, d["output_mib"])
        draft_c = compute_bytes(
            spec,
            cells,
            est.ubatch or 512,
            bool(est.flash_attn),
            True,
            slots,
            slots,
            g,
            recurrent=False,
        )
        row["draft_compute"] = (draft_c / MIB, d["compute_exact_mib"] or d["compute_mib"])
    est_total = sum(v[0] for k, v in row.items() if isinstance(v, tuple))
    log_total = sum(v[1] for k, v in row.items() if isinstance(v, tuple))
    row["total"] = (est_total, log_total)
    return row


def err(pair: tuple[float, float]) -> float:
    ours, logged = pair
    return 100.0 * (ours - logged) / logged if logged else 0.0


BEGIN, END = SECTIONS["llama-server"]


def markdown(
    doc: dict[str, Any], rows: list[dict[str, Any]], before: list[dict[str, Any]], old_build: int
) -> list[str]:
    """The section of docs/benchmarks.md this rig owns (kept by benchmarks/run_all.py)."""
    out = [
        BEGIN,
        f"## llama-server {doc['build']}: qwenfit's commands started, the log against the estimate",
        "",
        f"`benchmarks/llamaserver/rig.py` on llama.cpp release b{doc['build']} "
        "(`benchmarks/llamaserver/build.sh`, CPU, 2 cores, 24 GiB): "
        f"{len(doc['records'])} llama-server commands from `qwenfit launch` (the panel's "
        "llama.cpp commands that fit, and a grid) started on zero-weight GGUFs, each log "
        f"read back (`tests/fixtures/measured/{FIXTURE.name}`). `=`: the estimate prints "
        "the same MiB as the log. Regenerate: `python benchmarks/llamaserver/accuracy.py "
        "--docs`.",
        "",
        f"Compute buffer with build {old_build}'s graph: worst "
        f"{max(abs(err(r['compute'])) for r in before):.2f} %; with build {doc['build']}'s: "
        f"worst {max(abs(err(r['compute'])) for r in rows):.2f} %, "
        f"{sum(abs(err(r['compute'])) <= 3 for r in rows)} of {len(rows)} runs within 3 %; "
        f"total worst {max(abs(err(r['total'])) for r in rows):.2f} %.",
        "",
        "| run | weights MiB | KV MiB | state MiB | output MiB | compute MiB (est / log) "
        f"| compute err % | err % with {old_build} | total err % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r, b in zip(rows, before, strict=True):
        same = [
            "=" if round(r[k][0], 2) == round(r[k][1], 2) else f"{r[k][0]:.2f}"
            for k in ("weights", "kv", "state", "output")
        ]
        out.append(
            f"| {r['label']} | {r['weights'][1]:.2f} {same[0]} | {r['kv'][1]:.2f} "
            f"{same[1]} | {r['state'][1]:.2f} {same[2]} | {r['output'][1]:.2f} "
            f"{same[3]} | {r['compute'][0]:.2f} / {r['compute'][1]:.2f} | "
            f"{err(r['compute']):+.2f} | {err(b['compute']):+.2f} | "
            f"{err(r['total']):+.2f} |"
        )
    out += [
        "",
        "Not started here: "
        + "; ".join(
            f"{s['label'].removeprefix('panel: runtime=llama.cpp, ')} ({s['reason']})"
            for s in doc["skipped"]
        )
        + ".",
        END,
    ]
    return out


def main() -> None:
    argv = sys.argv[1:]
    args = [a for i, a in enumerate(argv) if not a.startswith("--") and argv[i - 1] != "--build"]
    doc = load(Path(args[0]) if args else FIXTURE)
    build = doc["build"]
    if "--build" in sys.argv:
        build = int(sys.argv[sys.argv.index("--build") + 1])
    rows = [compare(r, build) for r in measured_runs(doc)]
    if "--docs" in sys.argv:
        before = [compare(r, 11312) for r in measured_runs(doc)]
        write_section("llama-server", "\n".join(markdown(doc, rows, before, 11312)))
    print(f"llama-server build {doc['build']} measured; estimate for build {build}")
    if "--markdown" in sys.argv:
        print(
            "| run | weights MiB | KV MiB | state MiB | output MiB | compute MiB (est / log)"
            " | compute err % | total err % |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            same = [
                "=" if round(r[k][0], 2) == round(r[k][1], 2) else f"{r[k][0]:.2f}"
                for k in ("weights", "kv", "state", "output")
            ]
            print(
                f"| {r['label']} | {r['weights'][1]:.2f} {same[0]} | {r['kv'][1]:.2f} "
                f"{same[1]} | {r['state'][1]:.2f} {same[2]} | {r['output'][1]:.2f} {same[3]} | "
                f"{r['compute'][0]:.2f} / {r['compute'][1]:.2f} | {err(r['compute']):+.2f} | "
                f"{err(r['total']):+.2f} |"
            )
    else:
        for r in rows:
            print(
                f"{r['label'][:70]:70} compute {err(r['compute']):+6.2f}% total "
                f"{err(r['total']):+6.2f}%"
            )
    worst = max(abs(err(r["compute"])) for r in rows)
    worst_total = max(abs(err(r["total"])) for r in rows)
    print(f"worst |error| %: compute {worst:.2f}, total {worst_total:.2f} ({len(rows)} runs)")


if __name__ == "__main__":
    main()
