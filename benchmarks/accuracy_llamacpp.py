"""qwenfit's llama.cpp estimates against llama.cpp's own buffer accounting.

Reads tests/fixtures/measured/llamacpp_memory.json (made by benchmarks/llamacpp/measure_memory.py)
and prints, for every measured configuration, the error of each part and of the total, in %.
Usage: python benchmarks/accuracy_llamacpp.py [--markdown]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from qwenfit import estimate
from qwenfit.hardware.machine import Machine
from qwenfit.memory.llamacpp import compute_bytes, kv_cells, output_bytes
from qwenfit.memory.llamacpp_builds import graph_for
from qwenfit.specs.table import load_specs

FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/measured/llamacpp_memory.json"
BUILD = 11312  # llama.cpp 0c1e570 as vendored by llama-cpp-python 0.3.36 (the fixture's build)
CPU_ONLY = Machine(
    source="hypothetical",
    ram_total_bytes=1 << 50,
    ram_available_bytes=1 << 50,
    ram_usable_bytes=1 << 50,
)


def records() -> list[dict[str, Any]]:
    return json.loads(FIXTURE.read_text())["records"]  # type: ignore[no-any-return]


def _mapped_model_bytes() -> dict[tuple[str, str], int]:
    """{(model, weights): CPU_Mapped bytes} from the real (mmap) loads."""
    return {
        (r["model"], r["weights"]): r["buffers_bytes"]["model_CPU_Mapped"]
        for r in records()
        if "model_CPU_Mapped" in r["buffers_bytes"]
    }


def _weights(r: dict[str, Any]) -> int:
    """The model buffer as the file maps it. A no_alloc run of a quantized file does not map it
    (it reports the CPU-repacked copies instead), so it takes the real load's figure for the
    same file: the model buffer does not depend on the context settings."""
    b = r["buffers_bytes"]
    if "model_CPU_Mapped" in b:
        return int(b["model_CPU_Mapped"])
    if r["no_alloc"] and r["weights"] != "bf16":
        return _mapped_model_bytes()[(r["model"], r["weights"])]
    return int(b["model"])


def compare(r: dict[str, Any]) -> dict[str, float | str | int]:
    """Measured vs estimated bytes for one record: {part: error %} plus the inputs."""
    seqs = r["n_seq_max"]
    est = estimate(
        r["model"],
        runtime="llama.cpp",
        quant=r["weights"],
        context=r["n_ctx"] // seqs,
        parallel=seqs,
        kv_cache=r["type_k"],
        ubatch=r["n_ubatch"],
        flash_attn=r["flash_attn"],
        text_only=True,
        machine=CPU_ONLY,
        llama_cpp_build=BUILD,
    )
    b = r["buffers_bytes"]
    measured = {
        "weights": _weights(r),
        "kv": b["kv"],
        "state": b["rs"],
        "compute": b["compute"] + b["output"],
    }
    server = bool(r.get("n_outputs_max"))
    compute = est.compute_bytes
    if not server:  # llama.cpp's library default: the reservation holds every token's logits
        spec = load_specs().get(r["model"])
        compute = output_bytes(spec, seqs) + compute_bytes(
            spec,
            kv_cells(est.context, seqs),
            r["n_ubatch"],
            r["flash_attn"] == "on",
            outputs=None,
            sequences=seqs,
            graph=graph_for(BUILD),
        )
    ours = {
        "weights": est.weights_bytes,
        "kv": est.kv_cache_bytes,
        "state": est.linear_state_bytes,
        "compute": compute,
    }
    row: dict[str, float | str | int] = {
        "model": r["model"],
        "weights_type": r["weights"],
        "n_ctx": r["n_ctx"],
        "seqs": seqs,
        "kv_type": r["type_k"],
        "ubatch": r["n_ubatch"],
        "fa": r["flash_attn"],
        "reservation": "server" if server else "library",
    }
    for k in measured:
        row[k] = 100 * (ours[k] - measured[k]) / measured[k]
    row["total"] = 100 * (sum(ours.values()) - sum(measured.values())) / sum(measured.values())
    row["total_gib"] = sum(measured.values()) / 2**30
    row["compute_mib"] = measured["compute"] / 2**20
    return row


def main() -> None:
    rows = [compare(r) for r in records()]
    parts = ["weights", "kv", "state", "compute", "total"]
    if "--markdown" in sys.argv:
        print(
            "| model | weights | ctx | seqs | KV | ubatch | FA | reservation | measured GiB | "
            + " | ".join(f"{p} err %" for p in parts)
            + " |"
        )
        print("|---" * (9 + len(parts)) + "|")
        for r in rows:
            print(
                f"| {r['model']} | {r['weights_type']} | {r['n_ctx']} | {r['seqs']} | "
                f"{r['kv_type']} | {r['ubatch']} | {r['fa']} | {r['reservation']} | "
                f"{r['total_gib']:.2f} | " + " | ".join(f"{r[p]:+.2f}" for p in parts) + " |"
            )
    else:
        for r in rows:
            print(
                f"{r['model']:18} {r['weights_type']:6} ctx={r['n_ctx']:6} seqs={r['seqs']} "
                f"kv={r['kv_type']:4} ub={r['ubatch']:4} fa={r['fa']:3} {r['reservation']:7} "
                + " ".join(f"{p}={r[p]:+6.2f}%" for p in parts)
            )
    worst = {p: max(abs(float(r[p])) for r in rows) for p in parts}
    print("worst |error| %: " + ", ".join(f"{p} {v:.2f}" for p, v in worst.items()))


if __name__ == "__main__":
    main()
