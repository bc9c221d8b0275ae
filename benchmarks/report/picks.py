"""Each tool's pick for nine hypothetical machines, checked against llama.cpp's measured bytes.

The need of a pick is rebuilt from measurements wherever they exist: weights from
llamacpp_quant_sizes.json (llama-quantize's own per-tensor bytes), the token-embedding share
from llamacpp_tensor_groups.json (llama.cpp keeps it in RAM when offloading), KV, recurrent
state and compute buffers from llamacpp_memory.json at the same context, the vision projector
from llamacpp_mmproj.json. Parts without a measurement (contexts other than 4k/32k/128k/256k,
quantized KV) come from qwenfit's estimate, and the row says so. CUDA/Metal context memory
(~0.3-0.5 GiB) is in no table: a pick with less headroom than that is marked tight.
"""

from __future__ import annotations

from typing import Any

from report.common import RESULTS, GiB, load, measured

# id -> qwenfit's hypothetical machine (same ids and hardware as benchmarks/peers/picks.py).
MACHINES: dict[str, dict[str, Any]] = {
    "cpu-16gb": {"vram": 0, "ram": "16GB"},
    "gpu-8gb": {"vram": "8GB", "ram": "32GB"},
    "gpu-12gb": {"gpu": "RTX 3060", "ram": "32GB"},
    "gpu-16gb": {"gpu": "RTX 4080", "ram": "32GB"},
    "gpu-24gb": {"gpu": "RTX 4090", "ram": "64GB"},
    "gpu-48gb": {"gpu": "L40S", "ram": "128GB"},
    "gpu-80gb": {"gpu": "H100", "ram": "256GB"},
    "2x-gpu-24gb": {"gpu": "2x RTX 4090", "ram": "128GB"},
    "apple-36gb": {"gpu": "Apple M3 Max", "ram": "36GB"},
}
TIGHT = GiB // 2


class Need:
    """llama.cpp's measured bytes for (model, quant, context), with their provenance."""

    def __init__(self) -> None:
        self.sizes = measured("llamacpp_quant_sizes")["models"]
        self.groups = measured("llamacpp_tensor_groups")["models"]
        self.mmproj = {
            r["model"]: r["exact"]["weights_plus_compute"]
            for r in measured("llamacpp_mmproj")["records"]
        }
        self.mem = {}
        for r in measured("llamacpp_memory")["records"]:
            if (r["n_seq_max"], r["n_ubatch"], r["flash_attn"], r["weights"]) == (
                1,
                512,
                "on",
                "bf16",
            ):
                self.mem[(r["model"], r["n_ctx"], r["type_k"])] = r["buffers_bytes"]

    def __call__(
        self, model: str, quant: str, context: int, kv: str = "f16", vision: bool = False
    ) -> dict[str, Any]:
        quant = quant.lower()
        sizes = self.sizes.get(model, {}).get("tensor_bytes", {})
        if quant not in sizes:
            return {"error": f"{quant} not in llamacpp_quant_sizes.json"}
        out: dict[str, Any] = {
            "weights": sizes[quant],
            "token_embd": self.groups[model][quant]["token_embd"],
        }
        b = self.mem.get((model, context, kv))
        if b is not None:
            out |= {"kv": b["kv"], "state": b["rs"], "compute": b["compute"] + b["output"]}
            src = ["all measured"]
        else:
            est = _qwenfit_parts(model, quant, context, kv)
            out |= est
            src = [f"KV/state/compute: qwenfit estimate ({context} tokens, {kv} KV not measured)"]
        out["vision"] = 0
        if vision:
            if model in self.mmproj:
                out["vision"] = self.mmproj[model]
            else:
                out["vision"] = _qwenfit_vision(model)
                src.append("vision: qwenfit estimate")
        out["total"] = sum(out[k] for k in ("weights", "kv", "state", "compute", "vision"))
        out["source"] = "; ".join(src)
        return out


def _qwenfit_parts(model: str, quant: str, context: int, kv: str) -> dict[str, int]:
    from accuracy_llamacpp import CPU_ONLY

    from qwenfit import estimate

    e = estimate(
        model,
        runtime="llama.cpp",
        quant=quant,
        context=context,
        kv_cache=kv,
        text_only=True,
        machine=CPU_ONLY,
    )
    return {"kv": e.kv_cache_bytes, "state": e.linear_state_bytes, "compute": e.compute_bytes}


def _qwenfit_vision(model: str) -> int:
    from accuracy_llamacpp import CPU_ONLY

    from qwenfit import estimate

    return estimate(
        model, runtime="llama.cpp", quant="q4_k_m", context=4096, machine=CPU_ONLY
    ).vision_bytes


def verdict(need: dict[str, Any], placement: str, gpu_bytes: int, ram_bytes: int) -> str:
    """Does the need fit the machine, as the tool says it runs (gpu / offload / cpu)?"""
    if "error" in need:
        return "unknown: " + need["error"]
    total = need["total"]
    if placement == "cpu" or not gpu_bytes:
        left = ram_bytes - total
        return "fits in RAM" if left >= 0 else f"does not fit (RAM short {-left / GiB:.1f} GiB)"
    if placement == "offload":
        left = gpu_bytes + ram_bytes - total
        return (
            "fits only with offload to RAM"
            if left >= 0
            else f"does not fit (short {-left / GiB:.1f} GiB)"
        )
    left = gpu_bytes - (total - need["token_embd"])
    if left < 0:
        return f"does not fit in VRAM (short {-left / GiB:.1f} GiB)"
    if left < TIGHT:
        return f"tight ({left / 2**20:.0f} MiB left for the GPU runtime)"
    return f"fits ({left / GiB:.1f} GiB free)"


def _placement(tool: str, pick: dict[str, Any]) -> str:
    if tool == "qwenfit":
        p = pick["placement"]
        return "cpu" if p == "cpu" else ("offload" if "offload" in p else "gpu")
    if tool == "llmfit":
        mode = (pick.get("run_mode") or "").lower()
        return "cpu" if mode == "cpu" else ("offload" if "offload" in mode else "gpu")
    if tool == "whichllm":
        fit = pick.get("fit") or ""
        return {"cpu_only": "cpu", "partial_offload": "offload"}.get(fit, "gpu")
    return "gpu"


def run(smoke: bool) -> dict[str, Any]:
    """Picks per machine and tool, with the measured need and the verdict."""
    from qwenfit import recommend, with_overrides

    need = Need()
    peers = (
        {} if smoke else {m["machine"]: m for m in load(RESULTS / "peers_picks.json")["machines"]}
    )
    rows = []
    for mid, kw in MACHINES.items():
        machine = with_overrides(None, **kw)
        gpu_bytes = sum(g.memory_total_bytes or 0 for g in machine.gpus)
        ram_bytes = machine.ram_usable_bytes or 0
        rec = recommend(machine, runtime="llama.cpp").recommendations[0]
        picks = {
            "qwenfit": {
                "model": rec.model,
                "quant": rec.quant,
                "context": rec.context,
                "kv": rec.estimate.kv_cache,
                "placement": rec.placement,
                "vision": not rec.estimate.text_only,
                "tokens_per_s": rec.tokens_per_second,
                "claimed_bytes": rec.estimate.total_bytes,
            }
        }
        peer = peers.get(mid, {})
        for tool in ("llmfit", "whichllm", "vllm-wizard"):
            p = peer.get(tool)
            if not p:
                continue
            if "pick" not in p:
                picks[tool] = {"error": p.get("error", "no pick")}
                continue
            q = p["pick"]
            picks[tool] = {
                "model": q["model"],
                "quant": q["quant"],
                "context": q["context"],
                "kv": "f16",
                "placement": _placement(tool, q),
                "vision": False,
                "tokens_per_s": q.get("estimated_tps") or q.get("estimated_tok_per_sec"),
                "claimed_bytes": (
                    q["memory_required_gb"] * 1e9
                    if q.get("memory_required_gb")
                    else q.get("vram_required_bytes")
                ),
            }
        for tool, p in picks.items():
            row = {"machine": mid, "tool": tool, "gpu_bytes": gpu_bytes, "ram_bytes": ram_bytes}
            if "error" in p:
                rows.append(row | {"error": p["error"]})
                continue
            n = need(p["model"], p["quant"], p["context"], p["kv"], p["vision"])
            rows.append(
                row | p | {"need": n, "verdict": verdict(n, p["placement"], gpu_bytes, ram_bytes)}
            )
    return {"rows": rows, "machines": MACHINES}
