"""qwenfit against published measurements on real hardware (issue 18).

Reads benchmarks/realworld/measurements.json (each record cites its source), asks qwenfit's
public `estimate()` for the same configuration, and prints the error per quantity: KV cache,
recurrent (Gated DeltaNet) state, compute buffer, host-side weights, decode, prefill and
aggregate speed. Every speed figure is given twice: in-sample (the shipped calibration) and
leave-one-device-out (refitted on data/speed_measurements.json without any point of the
record's device, `qwenfit.memory.speed_fit.without_device`): the second is the error a user of
a device the fit has never seen can expect.

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
from qwenfit.memory import calibration, llamacpp, speed, speed_fit
from qwenfit.memory.speed_fit import vendor_of
from qwenfit.specs.table import load_specs

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "measurements.json"
TiB = 1 << 40
QUANTITIES = (
    "kv",
    "state",
    "compute",
    "host_weights",
    "card_used",
    "ollama_total",
    "decode",
    "prefill",
    "aggregate",
)
MEMORY = {
    "kv": "kv_bytes",
    "state": "rs_bytes",
    "compute": "compute_bytes",
    "host_weights": "host_weights_bytes",
    "card_used": "card_used_bytes",
    "ollama_total": "ollama_total_bytes",
}


def records() -> list[dict[str, Any]]:
    return json.loads(FIXTURE.read_text())["records"]  # type: ignore[no-any-return]


def machine(r: dict[str, Any]) -> Machine:
    """One or `count` GPUs as the source describes them, memory large enough that the model
    stays on them (every speed record ran fully offloaded)."""
    dev = r["device"] or {"gpu": "RTX 4090"}  # memory-only records: any GPU
    if dev.get("cpu"):  # a CPU run: no GPU, the measured RAM bandwidth
        return Machine(
            source="hypothetical",
            ram_total_bytes=TiB,
            ram_available_bytes=TiB,
            ram_usable_bytes=TiB,
            ram_bandwidth_bytes_per_s=dev["bandwidth_bytes_per_s"],
        )
    count = dev.get("count", 1)
    if dev.get("gpu"):
        g = catalog_gpus(dev["gpu"], 128 << 30)[0]
    else:
        flops = dev.get("fp16_tensor_tflops")
        g = GPU(
            index=0,
            name=dev["name"],
            vendor=vendor_of(dev["name"]),
            memory_total_bytes=TiB,
            memory_free_bytes=TiB,
            bandwidth_bytes_per_s=int(dev["bandwidth_bytes_per_s"]),
            fp16_tensor_flops=None if flops is None else int(flops * 1e12),
            unified_memory=bool(dev.get("unified_memory")),
        )
    gpus = [
        g.model_copy(update={"index": i, "memory_total_bytes": TiB, "memory_free_bytes": TiB})
        for i in range(count)
    ]
    return Machine(
        source="hypothetical",
        ram_total_bytes=TiB,
        ram_available_bytes=TiB,
        ram_usable_bytes=TiB,
        gpus=gpus,
    )


def _estimate(r: dict[str, Any], context: int | None = None, parallel: int | None = None) -> Any:
    s = r["settings"]
    quant = r.get("quant") or "q4_k_m"
    kwargs: dict[str, Any] = {}
    if r.get("compare_runtime", r["runtime"]) in ("llama.cpp", "ollama"):
        kwargs = {
            "kv_cache": s.get("kv_cache", "f16"),
            "ubatch": s.get("ubatch"),
            "flash_attn": {True: "on", False: "off"}.get(s.get("flash_attn"), "auto"),
            "llama_cpp_build": llama_cpp_build(r),
        }
    n = parallel or s.get("parallel", 1)
    return estimate(
        r["model"],
        runtime=r.get("compare_runtime", r["runtime"]),
        quant=quant,
        context=(context or s.get("context") or 4096) // 1,
        parallel=n,
        text_only=True,
        machine=machine(r),
        **kwargs,
    )


def llama_cpp_build(r: dict[str, Any]) -> int | None:
    """The llama.cpp build the source ran ("b10450 (ece963f41, ...)", "9283 llama-server"), so
    its figures are compared with that build's graph (memory/llamacpp_builds.py)."""
    m = re.match(r"b?(\d{4,6})\b", str(r.get("runtime_version") or ""))
    return int(m[1]) if m and r["runtime"] == "llama.cpp" else None


def _err(ours: float | None, measured: float | None) -> float | None:
    if ours is None or not measured:
        return None
    return 100 * (ours - measured) / measured


SHORT_PROMPT_DEPTH = 512  # decode depth for sources that time short prompts without a length
UNSTATED_PROMPT = 512  # prefill prompt length where a source does not state it (llama-bench)


def device_name(r: dict[str, Any]) -> str:
    """What leave-one-device-out groups by: the catalog name, else the source's name."""
    dev = r["device"] or {}
    return str(dev.get("gpu") or dev.get("name") or "not stated")


_FITS: dict[str, Any] = {}


def _fit_without(device: str) -> Any:
    """The calibration fitted without any point on `device` (cached per device)."""
    if device not in _FITS:
        points = calibration.measurements()
        _FITS[device] = speed_fit.fit(speed_fit.without_device(points, device))
    return _FITS[device]


def _backend(r: dict[str, Any]) -> Any:
    text = (r.get("backend") or "").lower()
    if "not stated" in text:
        return None
    return next((b for b in ("vulkan", "sycl") if b in text), None)


def with_weights(e: Any, weights_bytes: int) -> Any:
    """`e` with every weight read scaled to the published file's weights (an unsloth UD file
    keeps some tensors at a higher precision than the stock quant), as the fit does
    (`speed_fit`: weights_bytes)."""
    scale = weights_bytes / e.weights_bytes
    parts = [
        p.model_copy(update={"read_per_token_bytes": round(p.read_per_token_bytes * scale)})
        if p.part == "weights"
        else p
        for p in e.parts
    ]
    return e.model_copy(update={"parts": parts})


def _speed(r: dict[str, Any], what: str) -> float | None:
    """qwenfit's figure for `what` under the calibration in use."""
    m = r["measured"]
    s = r["settings"]
    if what == "aggregate":
        return _estimate(r, s.get("context"), s["parallel"]).aggregate_tokens_per_second
    e = _estimate(r, s.get("context"))
    t = load_specs()
    if what == "decode" and r.get("weights_bytes"):
        e = with_weights(e, r["weights_bytes"])
    if what == "decode":
        depth = s.get("depth")
        return speed.decode_rate(
            e, machine(r), t, SHORT_PROMPT_DEPTH if depth is None else depth, backend=_backend(r)
        )
    prompt = m.get("prompt_tokens") or UNSTATED_PROMPT
    rate = speed.prefill_rate(e, machine(r), t, prompt, m.get("depth") or 0)
    if rate is None or not s.get("server"):
        return rate
    return prompt / (prompt / rate + calibration.current().server_request_s)


def _both(r: dict[str, Any], what: str) -> tuple[float | None, float | None]:
    """(in-sample: the shipped calibration, leave-one-device-out)."""
    inside = _speed(r, what)
    with calibration.calibrated_on(_fit_without(device_name(r))):
        return inside, _speed(r, what)


def compare(r: dict[str, Any]) -> dict[str, Any]:
    """Measured vs qwenfit for one record: {quantity: (measured, ours, error %)}."""
    m = r["measured"]
    row: dict[str, Any] = {
        "id": r["id"],
        "model": r["model"],
        "runtime": r["runtime"],
        "backend": r["backend"],
        "device": (r["device"] or {}).get("name", "not stated"),
        "source": r["source"],
        "explain": r.get("explain"),
        "reservation": m.get("reservation"),
        "prompt_stated": "prefill_tps" not in m or bool(m.get("prompt_tokens")),
        "values": {},
    }
    e = _estimate(r) if any(k in m for k in MEMORY.values()) else None
    if e is not None:
        gpu_compute = sum(p.bytes for p in e.parts if p.part == "compute" and p.device is not None)
        if m.get("reservation") == "library":  # the daemon's own context: every-token logits
            spec = load_specs().get(r["model"])
            cells = llamacpp.kv_cells(e.context, e.parallel)
            gpu_compute = llamacpp.compute_bytes(
                spec, cells, e.ubatch or 512, bool(e.flash_attn), outputs=None
            )
        # a whole-card reading holds what qwenfit places on the GPU, the published file's
        # weights where the source states them
        card = e.gpu_bytes
        if r.get("weights_bytes"):
            on_gpu = sum(p.bytes for p in e.parts if p.part == "weights" and p.device is not None)
            card += int(on_gpu * (r["weights_bytes"] / e.weights_bytes - 1))
        ours = {
            "kv": e.kv_cache_bytes,
            "state": e.linear_state_bytes,
            "compute": gpu_compute,
            "host_weights": sum(
                p.bytes for p in e.parts if p.part == "weights" and p.device is None
            ),
            "card_used": card,
            "ollama_total": e.total_bytes,
        }
        for q, key in MEMORY.items():
            if key in m:
                row["values"][q] = {
                    "measured": m[key],
                    "qwenfit": ours[q],
                    "error": _err(ours[q], m[key]),
                    "kind": "estimate" if q in ("card_used", "ollama_total") else "exact formula",
                }
    for q, key in (
        ("decode", "decode_tps"),
        ("prefill", "prefill_tps"),
        ("aggregate", "aggregate_tps"),
    ):
        if key in m:
            inside, lodo = _both(r, q)
            row["values"][q] = {
                "measured": m[key],
                "qwenfit": lodo,
                "in_sample": inside,
                "error": _err(lodo, m[key]),
                "error_in_sample": _err(inside, m[key]),
                "kind": "leave-one-device-out",
            }
    return row


def _stats(a: list[float]) -> dict[str, Any]:
    return {
        "n": len(a),
        "median_abs": statistics.median(a),
        "max_abs": max(a),
        "within_35": sum(x <= 35 for x in a) / len(a),
        "within_40": sum(x <= 40 for x in a) / len(a),
        "within_10": sum(x <= 10 for x in a) / len(a),
        "within_1": sum(x <= 1 for x in a) / len(a),
    }


def summary(rows: list[dict[str, Any]], key: str = "error") -> dict[str, dict[str, Any]]:
    """Per quantity: n, median and max |error| %, shares within 1/10/35/40 % (`key`: error is
    leave-one-device-out for speeds, error_in_sample the shipped calibration)."""
    out: dict[str, dict[str, Any]] = {}
    for q in QUANTITIES:
        a = [
            abs(e)
            for r in rows
            if (v := r["values"].get(q))
            and (e := v.get(key, v["error"])) is not None
            and (q != "prefill" or r["prompt_stated"])
        ]
        if a:
            out[q] = _stats(a)
    unstated = [
        abs(e)
        for r in rows
        if not r["prompt_stated"]
        and (v := r["values"].get("prefill"))
        and (e := v.get(key, v["error"])) is not None
    ]
    if unstated:  # a rate for a prompt of unknown length: 512 tokens assumed
        out["prefill, prompt not stated"] = _stats(unstated)
    return out


def device_class(r: dict[str, Any]) -> str:
    """NVIDIA consumer / datacenter, AMD, Apple, unified-memory APU, CPU."""
    name = r["device"].lower()
    if name.startswith("apple"):
        return "Apple"
    if any(w in name for w in ("8060s", "spark", "gb10", "jetson")):
        return "unified-memory APU"
    if any(w in name for w in ("radeon", "rx ", "instinct", "mi")):
        return "AMD"
    if any(w in name for w in ("tesla", "l40", "a100", "h100", "h200", "a6000", "pro 6000")):
        return "NVIDIA datacenter/workstation"
    return "CPU" if name == "cpu" else "NVIDIA consumer"


def by_group(rows: list[dict[str, Any]], group: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """{quantity: {group: stats}} for decode and prefill, leave-one-device-out."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for q in ("decode", "prefill"):
        groups: dict[str, list[float]] = {}
        for r in rows:
            v = r["values"].get(q)
            if v and v["error"] is not None and (q != "prefill" or r["prompt_stated"]):
                groups.setdefault(group(r), []).append(abs(v["error"]))
        out[q] = {g: _stats(a) for g, a in sorted(groups.items())}
    return out


def run() -> dict[str, Any]:
    rows = [compare(r) for r in records()]
    speed_rows = [r for r in rows if "decode" in r["values"] or "prefill" in r["values"]]
    return {
        "rows": rows,
        "summary": summary(rows),
        "summary_in_sample": summary(rows, "error_in_sample"),
        "by_runtime": by_group(rows, lambda r: r["runtime"]),
        "by_class": by_group(rows, device_class),
        "devices": len({r["device"] for r in speed_rows}),
        "speed_points": sum(
            ("decode" in r["values"]) + ("prefill" in r["values"]) for r in speed_rows
        ),
    }


def _line(q: str, s: dict[str, Any]) -> str:
    return (
        f"{q:28} n={s['n']:3} median |err| {s['median_abs']:6.1f}%  max {s['max_abs']:7.1f}%"
        f"  within 10% {s['within_10']:4.0%}  35% {s['within_35']:4.0%}"
    )


def main() -> None:
    data = run()
    if "--json" in sys.argv:
        print(json.dumps(data, indent=1, default=str))
        return
    for r in data["rows"]:
        cells = []
        for q, v in r["values"].items():
            if v["error"] is None:
                continue
            inside = v.get("error_in_sample")
            cells.append(
                f"{q}={v['error']:+.1f}%" + (f" (in {inside:+.1f}%)" if inside is not None else "")
            )
        print(
            f"{r['id']:20} {r['model']:16} {r['runtime']:9} {r['device'][:26]:26} "
            + " ".join(cells)
        )
    print("(speeds: leave-one-device-out, in parentheses in-sample)")
    print(f"{data['speed_points']} speed points on {data['devices']} devices")
    for q, s in data["summary"].items():
        print(_line(q + (" (LODO)" if q.startswith(("decode", "prefill", "aggr")) else ""), s))
    for q, s in data["summary_in_sample"].items():
        if q.startswith(("decode", "prefill", "aggregate")):
            print(_line(q + " (in-sample)", s))
    for title in ("by_runtime", "by_class"):
        for q, groups in data[title].items():
            for g, s in groups.items():
                print(_line(f"{q} {g[:20]}", s))


if __name__ == "__main__":
    main()
