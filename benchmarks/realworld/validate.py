"""qwenfit against published measurements on real hardware (issue 18).

Reads benchmarks/realworld/measurements.json (each record cites its source), asks qwenfit's
public `estimate()` for the same configuration, and prints the error per quantity: KV cache,
recurrent (Gated DeltaNet) state, compute buffer, host-side weights, decode, prefill and
aggregate speed. Speed points that are also calibration points of data/speed_measurements.json
are predicted leave-one-out: the point is removed from the calibration first
(`qwenfit.memory.speed.calibrated_on`).

    python benchmarks/realworld/validate.py            # table + summary
    python benchmarks/realworld/validate.py --json     # rows as JSON
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

from qwenfit import estimate
from qwenfit.hardware.catalog import catalog_gpus
from qwenfit.hardware.machine import GPU, Machine
from qwenfit.memory import llamacpp, speed
from qwenfit.specs.table import load_specs

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "measurements.json"
TiB = 1 << 40
QUANTITIES = ("kv", "state", "compute", "host_weights", "card_used", "ollama_total", "decode",
              "prefill", "aggregate")
MEMORY = {"kv": "kv_bytes", "state": "rs_bytes", "compute": "compute_bytes",
          "host_weights": "host_weights_bytes", "card_used": "card_used_bytes",
          "ollama_total": "ollama_total_bytes"}


def records() -> list[dict[str, Any]]:
    return json.loads(FIXTURE.read_text())["records"]  # type: ignore[no-any-return]


def machine(r: dict[str, Any]) -> Machine:
    """One or `count` GPUs as the source describes them, memory large enough that the model
    stays on them (every speed record ran fully offloaded)."""
    dev = r["device"] or {"gpu": "RTX 4090"}  # memory-only records: any GPU
    count = dev.get("count", 1)
    if dev.get("gpu"):
        g = catalog_gpus(dev["gpu"], 128 << 30)[0]
    else:
        flops = dev.get("fp16_tensor_tflops")
        g = GPU(index=0, name=dev["name"], vendor="other", memory_total_bytes=TiB,
                memory_free_bytes=TiB, bandwidth_bytes_per_s=int(dev["bandwidth_bytes_per_s"]),
                fp16_tensor_flops=None if flops is None else int(flops * 1e12),
                unified_memory=bool(dev.get("unified_memory")))
    gpus = [g.model_copy(update={"index": i, "memory_total_bytes": TiB,
                                 "memory_free_bytes": TiB}) for i in range(count)]
    return Machine(source="hypothetical", ram_total_bytes=TiB, ram_available_bytes=TiB,
                   ram_usable_bytes=TiB, gpus=gpus)


def _estimate(r: dict[str, Any], context: int | None = None, parallel: int | None = None) -> Any:
    s = r["settings"]
    quant = r.get("quant") or "q4_k_m"
    kwargs: dict[str, Any] = {}
    if r.get("compare_runtime", r["runtime"]) in ("llama.cpp", "ollama"):
        kwargs = {"kv_cache": s.get("kv_cache", "f16"), "ubatch": s.get("ubatch"),
                  "flash_attn": {True: "on", False: "off"}.get(s.get("flash_attn"), "auto"),
                  "llama_cpp_build": llama_cpp_build(r)}
    n = parallel or s.get("parallel", 1)
    return estimate(r["model"], runtime=r.get("compare_runtime", r["runtime"]), quant=quant,
                    context=(context or s.get("context") or 4096) // 1, parallel=n,
                    text_only=True, machine=machine(r), **kwargs)


def llama_cpp_build(r: dict[str, Any]) -> int | None:
    """The llama.cpp build the source ran ("b10450 (ece963f41, ...)", "9283 llama-server"), so
    its figures are compared with that build's graph (memory/llamacpp_builds.py)."""
    m = re.match(r"b?(\d{4,6})\b", str(r.get("runtime_version") or ""))
    return int(m[1]) if m and r["runtime"] == "llama.cpp" else None


def _err(ours: float | None, measured: float | None) -> float | None:
    if ours is None or not measured:
        return None
    return 100 * (ours - measured) / measured


def _loo(point_id: str) -> Any:
    """The calibration without the points of this record (None: it is not one)."""
    full = speed.measurements()
    rest = [m for m in full.measurements if not m.source.endswith(f"({point_id})")]
    if len(rest) == len(full.measurements):
        return None
    return speed.calibrated_on(full.model_copy(update={"measurements": rest}))


def _speed(r: dict[str, Any], what: str) -> tuple[float | None, str]:
    """qwenfit's figure for `what`, leave-one-out when the record is a calibration point."""
    m = r["measured"]
    s = r["settings"]
    ctx = s.get("context")
    if what == "decode":
        point = next((p for p in speed.measurements().measurements
                      if p.source.endswith(f"({r['id']})") and p.kind == "decode"), None)
        ctx = point.context if point else ctx
    if what == "prefill":
        ctx = m.get("prompt_tokens") or ctx

    def ask() -> float | None:
        if what == "aggregate":
            return _estimate(r, ctx, s["parallel"]).aggregate_tokens_per_second
        e = _estimate(r, ctx)
        if what == "decode":
            return e.tokens_per_second
        t = load_specs()
        return speed.prefill_rate(e, machine(r), t, m.get("prompt_tokens") or 512)

    loo = _loo(r["id"]) if what != "aggregate" else None
    if loo is None:
        return ask(), "out-of-sample"
    with loo:
        return ask(), "leave-one-out"


def compare(r: dict[str, Any]) -> dict[str, Any]:
    """Measured vs qwenfit for one record: {quantity: (measured, ours, error %)}."""
    m = r["measured"]
    row: dict[str, Any] = {"id": r["id"], "model": r["model"], "runtime": r["runtime"],
                           "backend": r["backend"],
                           "device": (r["device"] or {}).get("name", "not stated"),
                           "source": r["source"], "explain": r.get("explain"),
                           "reservation": m.get("reservation"),
                           "prompt_stated": "prefill_tps" not in m or bool(m.get("prompt_tokens")),
                           "values": {}}
    e = _estimate(r) if any(k in m for k in MEMORY.values()) else None
    if e is not None:
        gpu_compute = sum(p.bytes for p in e.parts if p.part == "compute" and p.device is not None)
        if m.get("reservation") == "library":  # the daemon's own context: every-token logits
            spec = load_specs().get(r["model"])
            cells = llamacpp.kv_cells(e.context, e.parallel)
            gpu_compute = llamacpp.compute_bytes(spec, cells, e.ubatch or 512, bool(e.flash_attn),
                                                 outputs=None)
        # a whole-card reading holds what qwenfit places on the GPU, the published file's
        # weights where the source states them
        card = e.gpu_bytes
        if r.get("weights_bytes"):
            on_gpu = sum(p.bytes for p in e.parts if p.part == "weights" and p.device is not None)
            card += int(on_gpu * (r["weights_bytes"] / e.weights_bytes - 1))
        ours = {"kv": e.kv_cache_bytes, "state": e.linear_state_bytes, "compute": gpu_compute,
                "host_weights": sum(p.bytes for p in e.parts
                                    if p.part == "weights" and p.device is None),
                "card_used": card, "ollama_total": e.total_bytes}
        for q, key in MEMORY.items():
            if key in m:
                row["values"][q] = {"measured": m[key], "qwenfit": ours[q],
                                    "error": _err(ours[q], m[key]),
                                    "kind": "estimate" if q in ("card_used", "ollama_total")
                                    else "exact formula"}
    for q, key in (("decode", "decode_tps"), ("prefill", "prefill_tps"),
                   ("aggregate", "aggregate_tps")):
        if key in m:
            ours_v, kind = _speed(r, q)
            row["values"][q] = {"measured": m[key], "qwenfit": ours_v,
                                "error": _err(ours_v, m[key]), "kind": kind}
    return row


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per quantity: n, median and max |error| %, share within 35 %, the misses."""
    out: dict[str, dict[str, Any]] = {}
    for q in QUANTITIES:
        errs = [(r["id"], v["error"]) for r in rows if (v := r["values"].get(q))
                and v["error"] is not None]
        if not errs:
            continue
        a = [abs(e) for _, e in errs]
        out[q] = {"n": len(a), "median_abs": statistics.median(a), "max_abs": max(a),
                  "within_35": sum(x <= 35 for x in a) / len(a),
                  "within_40": sum(x <= 40 for x in a) / len(a),
                  "within_10": sum(x <= 10 for x in a) / len(a),
                  "within_1": sum(x <= 1 for x in a) / len(a)}
    return out


def by_runtime(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Decode median |error| % per runtime."""
    out: dict[str, dict[str, float]] = {}
    for rt in sorted({r["runtime"] for r in rows}):
        a = [abs(v["error"]) for r in rows if r["runtime"] == rt
             and (v := r["values"].get("decode")) and v["error"] is not None]
        if a:
            out[rt] = {"n": len(a), "median_abs": statistics.median(a)}
    return out


def run() -> dict[str, Any]:
    rows = [compare(r) for r in records()]
    return {"rows": rows, "summary": summary(rows), "by_runtime": by_runtime(rows)}


def main() -> None:
    data = run()
    if "--json" in sys.argv:
        print(json.dumps(data, indent=1, default=str))
        return
    for r in data["rows"]:
        cells = [f"{q}={v['error']:+.1f}%" + ("*" if v["kind"] == "leave-one-out" else "")
                 for q, v in r["values"].items() if v["error"] is not None]
        print(f"{r['id']:9} {r['model']:16} {r['runtime']:9} {r['device'][:28]:28} "
              + " ".join(cells))
    print("(* leave-one-out: the point was removed from the calibration first)")
    for q, s in data["summary"].items():
        print(f"{q:12} n={s['n']:2} median |err| {s['median_abs']:6.1f}%  max {s['max_abs']:6.1f}%"
              f"  within 1% {s['within_1']:.0%}  10% {s['within_10']:.0%}  35% {s['within_35']:.0%}"
              f"  40% {s['within_40']:.0%}")
    for rt, s in data["by_runtime"].items():
        print(f"decode {rt:10} n={s['n']:.0f} median |err| {s['median_abs']:.1f}%")


if __name__ == "__main__":
    main()
