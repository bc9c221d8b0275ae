"""Runs inside whichllm's venv: seed its model cache, or call its memory estimator.

stdin: {"mode": "seed", "records": [...]}  -> parses Hub-style records with whichllm's own
parser and saves its cache (XDG_CACHE_HOME decides where).
stdin: {"mode": "estimate", "cases": [{"repo", "context", "quant"}]} -> per case whichllm's
weights / KV / total bytes, computed the way `whichllm plan` does (weights = params x bpw of
the quant, then engine.vram.estimate_vram).
stdin: {"mode": "speed", "cases": [{"repo", "gguf_repo", "quant", "gpu"}]} -> per case
whichllm's decode tok/s (engine.performance.estimate_tok_per_sec) for that GGUF file on a
simulated GPU named like `whichllm --gpu NAME` (gpu null: its CPU-only estimate).
"""

from __future__ import annotations

import json
import sys


def seed(records: list[dict]) -> dict:
    """Parse the records like a Hub fetch would and write whichllm's cache."""
    from whichllm.models.cache import CACHE_FILE, save_cache
    from whichllm.models.parser import _parse_model
    from whichllm.models.serialization import models_to_dicts

    models = [m for m in (_parse_model(r) for r in records) if m is not None]
    save_cache(models_to_dicts(models))
    return {"cache_file": str(CACHE_FILE), "models": [m.id for m in models]}


def estimate(cases: list[dict]) -> list[dict]:
    """whichllm's estimate per case, from its cached ModelInfo."""
    from whichllm.data.quantization import QUANT_BYTES_PER_WEIGHT
    from whichllm.engine.vram import _activation_bytes, estimate_kv_cache, estimate_vram
    from whichllm.models.cache import load_cache
    from whichllm.models.fetcher import dicts_to_models
    from whichllm.models.types import GGUFVariant

    cached = load_cache()
    if cached is None:
        raise SystemExit("whichllm cache missing or expired: seed it first")
    by_id = {m.id: m for m in dicts_to_models(cached)}
    out = []
    for case in cases:
        model = by_id.get(case["repo"])
        if model is None:
            out.append({**case, "error": "not in whichllm cache"})
            continue
        quant = case["quant"].upper()
        bpw = QUANT_BYTES_PER_WEIGHT.get(quant, 0.5625)
        variant = GGUFVariant(
            filename="", quant_type=quant, file_size_bytes=int(model.parameter_count * bpw)
        )
        ctx = case["context"]
        out.append(
            {
                **case,
                "parameter_count": model.parameter_count,
                "parameter_count_active": model.parameter_count_active,
                "is_moe": model.is_moe,
                "bytes_per_weight": bpw,
                "weights_bytes": variant.file_size_bytes,
                "kv_cache_bytes": estimate_kv_cache(model, ctx),
                "activation_bytes": _activation_bytes(model, ctx),
                "total_bytes": estimate_vram(model, variant, ctx),
            }
        )
    return out


def speed(cases: list[dict]) -> list[dict]:
    """whichllm's tok/s per case, as its recommendation would report it for that file."""
    from whichllm.engine.performance import estimate_tok_per_sec
    from whichllm.hardware.gpu_simulator import create_synthetic_gpus
    from whichllm.models.cache import load_cache
    from whichllm.models.fetcher import dicts_to_models

    cached = load_cache()
    if cached is None:
        raise SystemExit("whichllm cache missing or expired: seed it first")
    by_id = {m.id: m for m in dicts_to_models(cached)}
    out = []
    for case in cases:
        model = by_id.get(case["gguf_repo"])
        variant = None
        if model is not None:
            variant = next(
                (v for v in model.gguf_variants if v.quant_type.upper() == case["quant"].upper()),
                None,
            )
        if variant is None:
            out.append({**case, "error": "no such GGUF variant in whichllm's cache"})
            continue
        gpu = create_synthetic_gpus([case["gpu"]])[0] if case.get("gpu") else None
        fit = "full_gpu" if gpu is not None else "cpu_only"
        out.append(
            {
                **case,
                "tokens_per_s": estimate_tok_per_sec(model, variant, gpu, fit),
                "gpu_bandwidth_gbps": gpu.memory_bandwidth_gbps if gpu else None,
                "file_size_bytes": variant.file_size_bytes,
            }
        )
    return out


def main() -> None:
    """Dispatch on the request's mode."""
    req = json.load(sys.stdin)
    modes = {
        "seed": lambda: seed(req["records"]),
        "estimate": lambda: estimate(req["cases"]),
        "speed": lambda: speed(req["cases"]),
    }
    result = modes[req["mode"]]()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
