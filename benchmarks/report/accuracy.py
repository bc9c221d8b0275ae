"""Memory estimates of qwenfit and the peers against llama.cpp's own buffer accounting.

The reference is tests/fixtures/measured/llamacpp_memory.json: per model, context and settings,
the bytes llama.cpp itself reports for weights, KV cache, recurrent state and compute buffers
(CPU, text model). qwenfit is compared with benchmarks/accuracy_llamacpp.compare (every part);
a peer's weights, KV and total from benchmarks/results/peers_estimates.json are compared with
the measured model buffer, KV buffer and the sum of all buffers.
"""

from __future__ import annotations

import statistics
from typing import Any

from report.common import RESULTS, err, load, measured

# The peer runs cover the default llama.cpp settings: f16 KV, ubatch 512, flash attention on,
# one sequence; bf16 at every context, and Q4_K_M where a Q4_K_M file was measured (4k).
TOOLS = [
    "qwenfit",
    "llmfit",
    "whichllm",
    "hf-mem",
    "hf-mem-gguf",
    "vllm-wizard",
    "vllm-wizard-params-b",
    "vllm-wizard-official",
    "accelerate",
]


def _default_settings(r: dict[str, Any]) -> bool:
    """llama-server's defaults: f16 KV, ubatch 512, flash attention on, one slot, and its
    output reservation (one logits row per slot)."""
    return (
        r["n_seq_max"] == 1
        and r["type_k"] == "f16"
        and r["n_ubatch"] == 512
        and r["flash_attn"] == "on"
        and bool(r.get("n_outputs_max"))
    )


def reference() -> dict[tuple[str, str, int], dict[str, int]]:
    """{(model, weights type, context): measured bytes per part} at the default settings."""
    out = {}
    for r in measured("llamacpp_memory")["records"]:
        if not _default_settings(r):
            continue
        b = r["buffers_bytes"]
        parts = {
            "weights": b.get("model_CPU_Mapped", b["model"]),
            "kv": b["kv"],
            "state": b["rs"],
            "compute": b["compute"] + b["output"],
        }
        parts["total"] = sum(parts.values())
        out[(r["model"], r["weights"], r["n_ctx"])] = parts
    return out


def qwenfit_all() -> list[dict[str, Any]]:
    """qwenfit's error per part for every measured record (all settings)."""
    from accuracy_llamacpp import compare, records

    return [compare(r) for r in records()]


def peer_cases(
    ref: dict[tuple[str, str, int], dict[str, int]], estimates: dict[str, Any]
) -> list[dict[str, Any]]:
    """One row per (tool, model, precision, context) that has a measured reference."""
    rows = []
    for case in estimates["cases"]:
        key = (case["model"], case["precision"], case["context"])
        m = ref.get(key)
        if m is None:
            continue
        rows.append(
            {
                "tool": case["tool"],
                "model": key[0],
                "precision": key[1],
                "context": key[2],
                "ok": case["total_bytes"] is not None,
                "note": case["note"],
                "weights": err(case["weights_bytes"], m["weights"]),
                "kv": err(case["kv_cache_bytes"], m["kv"]),
                "total": err(case["total_bytes"], m["total"]),
                "total_bytes": case["total_bytes"],
                "measured_total": m["total"],
            }
        )
    return rows


def qwenfit_cases(
    all_rows: list[dict[str, Any]], ref: dict[tuple[str, str, int], dict[str, int]]
) -> list[dict[str, Any]]:
    """qwenfit's rows on the same grid as the peers."""
    rows = []
    for r in all_rows:
        key = (str(r["model"]), str(r["weights_type"]), int(r["n_ctx"]))
        if (
            key not in ref
            or r["seqs"] != 1
            or r["kv_type"] != "f16"
            or r["ubatch"] != 512
            or r["fa"] != "on"
            or r["reservation"] != "server"
        ):
            continue
        m = ref[key]
        rows.append(
            {
                "tool": "qwenfit",
                "model": key[0],
                "precision": key[1],
                "context": key[2],
                "ok": True,
                "note": "",
                "weights": r["weights"],
                "kv": r["kv"],
                "state": r["state"],
                "compute": r["compute"],
                "total": r["total"],
                "measured_total": m["total"],
                "total_bytes": m["total"] * (1 + float(r["total"]) / 100),
            }
        )
    return rows


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per tool: cases, mean/max |error| of total and KV, share of totals below the need."""
    out = []
    for tool in TOOLS:
        mine = [r for r in rows if r["tool"] == tool]
        if not mine:
            continue
        ok = [r for r in mine if r["ok"] and r["total"] is not None]
        kv = [abs(r["kv"]) for r in ok if r["kv"] is not None]
        wt = [abs(r["weights"]) for r in ok if r["weights"] is not None]
        tot = [abs(r["total"]) for r in ok]
        out.append(
            {
                "tool": tool,
                "cases": len(mine),
                "answered": len(ok),
                "total_mean": statistics.fmean(tot) if tot else None,
                "total_median": statistics.median(tot) if tot else None,
                "total_max": max(tot) if tot else None,
                "under": sum(1 for r in ok if r["total"] < 0),
                "kv_mean": statistics.fmean(kv) if kv else None,
                "weights_mean": statistics.fmean(wt) if wt else None,
                "note": "" if ok else (mine[0]["note"][:120]),
            }
        )
    return out


def by_context(rows: list[dict[str, Any]]) -> dict[str, dict[int, float]]:
    """{tool: {context: median |total error| % over the bf16 models}} for the plot."""
    out: dict[str, dict[int, float]] = {}
    for tool in TOOLS:
        for ctx in sorted({r["context"] for r in rows}):
            vals = [
                abs(r["total"])
                for r in rows
                if r["tool"] == tool
                and r["context"] == ctx
                and r["precision"] == "bf16"
                and r["ok"]
                and r["total"] is not None
            ]
            if vals:
                out.setdefault(tool, {})[ctx] = statistics.median(vals)
    return out


def run(smoke: bool) -> dict[str, Any]:
    """qwenfit on every record; the peers too unless smoke."""
    ref = reference()
    all_q = qwenfit_all()
    rows = qwenfit_cases(all_q, ref)
    if not smoke:
        rows += peer_cases(ref, load(RESULTS / "peers_estimates.json"))
    return {
        "qwenfit_all": all_q,
        "rows": rows,
        "summary": summary(rows),
        "by_context": by_context(rows),
        "n_reference": len(ref),
    }
