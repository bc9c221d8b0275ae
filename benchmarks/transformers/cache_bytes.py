"""Measure what transformers' Qwen3.5 cache really holds after prefill and decode.

qwenfit predicts KV-cache and linear-attention state bytes from the
architecture table; this rig builds Qwen3_5ForCausalLM with random bf16
weights on CPU (no download), runs a prefill and one decode step, and sums
the tensors that the returned DynamicCache holds, per kind, so the formulas
can be checked against the real implementation.
Writes tests/fixtures/measured/transformers_cache.json.

Run: /work/rigs/hf/venv/bin/python benchmarks/transformers/cache_bytes.py
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import transformers
from torch.profiler import ProfilerActivity, profile
from transformers.cache_utils import DynamicLayer, LinearAttentionCacheLayerMixin

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hf_config

OUT_PATH = hf_config.REPO_ROOT / "tests" / "fixtures" / "measured" / "transformers_cache.json"
DEFAULT_MODELS = ("qwen3.5-0.8b", "qwen3.5-2b", "qwen3.5-4b")
# (batch, prompt_tokens), cheapest first so a slow model can stop early.
DEFAULT_RUNS = ((1, 512), (1, 2048), (2, 2048), (1, 8192))
MAX_PREFILL_S = 600.0


def current_rss() -> int:
    """Resident set size now, in bytes (from /proc, as ru_maxrss has no 'now')."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize()


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark, so ru_maxrss covers only what follows."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def peak_rss() -> int:
    """Peak RSS since the last reset, in bytes (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Build the random model directly in bf16, as from_pretrained(dtype=bf16) would."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@contextlib.contextmanager
def single_thread_triangular_solve() -> Iterator[None]:
    """Run torch.linalg.solve_triangular on one thread.

    With 2 threads this CPU build takes ~1 s per batched 64x64 solve in
    transformers' torch_chunk_gated_delta_rule (25-150x slower than 1 thread),
    which doubled prefill time. Same op, same tensors: memory is unchanged.
    """
    original = torch.linalg.solve_triangular

    def solve(*args: Any, **kwargs: Any) -> torch.Tensor:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return original(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    torch.linalg.solve_triangular = solve
    try:
        yield
    finally:
        torch.linalg.solve_triangular = original


def torch_alloc_stats(prof: profile) -> dict[str, int]:
    """Peak and net bytes allocated by torch's CPU allocator inside the profiled region.

    torch has no CPU memory_allocated(); the profiler's [memory] events carry
    +bytes on allocation and -bytes on free, so their running sum is the
    allocator's live-bytes curve relative to the start of the region.
    """
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return {"torch_alloc_peak_bytes": peak, "torch_alloc_net_bytes": live}


def describe(tensors: list[torch.Tensor]) -> dict[str, Any]:
    """Bytes, dtypes and distinct shapes (with layer counts) of a tensor list."""
    shapes: dict[str, int] = {}
    dtypes: set[str] = set()
    for t in tensors:
        key = "x".join(str(d) for d in t.shape)
        shapes[key] = shapes.get(key, 0) + 1
        dtypes.add(str(t.dtype).removeprefix("torch."))
    return {
        "bytes": sum(t.numel() * t.element_size() for t in tensors),
        "dtypes": sorted(dtypes),
        "shapes": shapes,
    }


def measure_cache(cache: Any) -> dict[str, Any]:
    """Split the cache's tensors into full-attention K/V, conv states and recurrent states.

    Where they live (transformers/cache_utils.py): DynamicCache.layers[i] is a
    DynamicLayer (`.keys`, `.values`) for full_attention layers and a
    LinearAttentionLayer (`.conv_states[idx]`, `.recurrent_states[idx]`)
    for linear_attention layers; hybrid layers would be both.
    """
    kv: list[torch.Tensor] = []
    conv: list[torch.Tensor] = []
    rec: list[torch.Tensor] = []
    kinds: dict[str, int] = {}
    for layer in cache.layers:
        kinds[type(layer).__name__] = kinds.get(type(layer).__name__, 0) + 1
        if isinstance(layer, LinearAttentionCacheLayerMixin):
            conv += [t for t in layer.conv_states.values() if t is not None]
            rec += [t for t in layer.recurrent_states.values() if t is not None]
        if isinstance(layer, DynamicLayer) and layer.is_initialized:
            kv += [t for t in (layer.keys, layer.values) if t is not None and t.numel()]
    parts = {"kv": describe(kv), "conv_state": describe(conv), "recurrent_state": describe(rec)}
    return {
        "kv_bytes": parts["kv"]["bytes"],
        "conv_state_bytes": parts["conv_state"]["bytes"],
        "recurrent_state_bytes": parts["recurrent_state"]["bytes"],
        "dtypes": {k: v["dtypes"] for k, v in parts.items()},
        "shapes": {k: v["shapes"] for k, v in parts.items()},
        "cache_layer_classes": kinds,
        "seq_length": cache.get_seq_length(),
    }


def run_step(
    model: torch.nn.Module, use_profiler: bool, **inputs: Any
) -> tuple[Any, dict[str, Any]]:
    """One forward pass with RSS and allocator accounting around it."""
    gc.collect()
    reset_ok = reset_peak_rss()
    rss_before = current_rss()
    start = time.perf_counter()
    ctx = (
        profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        if use_profiler
        else contextlib.nullcontext()
    )
    with ctx as prof, torch.inference_mode():
        out = model(use_cache=True, logits_to_keep=1, **inputs)
    seconds = time.perf_counter() - start
    stats: dict[str, Any] = {
        "seconds": round(seconds, 2),
        "rss_before_bytes": rss_before,
        "peak_rss_growth_bytes": peak_rss() - rss_before if reset_ok else None,
        "rss_growth_retained_bytes": current_rss() - rss_before,
    }
    if use_profiler:
        stats.update(torch_alloc_stats(prof))
    return out, stats


def build_model(spec: dict[str, Any]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Random-weight text-only model in bf16 on CPU."""
    classes = hf_config.model_classes(spec)
    cfg = hf_config.build_text_config(spec)
    torch.manual_seed(0)
    start = time.perf_counter()
    with default_dtype(torch.bfloat16):
        model = classes["causal_lm"](cfg)
    model.eval()
    info = {
        "class": type(model).__name__,
        "attn_implementation": model.config._attn_implementation,
        "param_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "build_seconds": round(time.perf_counter() - start, 1),
        "layer_types": {t: cfg.layer_types.count(t) for t in sorted(set(cfg.layer_types))},
    }
    return model, info


def measure_model(
    name: str, runs: list[tuple[int, int]], use_profiler: bool, deadline: float
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All (batch, prompt) runs for one model; skips runs predicted to exceed MAX_PREFILL_S."""
    spec = hf_config.get_spec(name)
    model, info = build_model(spec)
    print(f"{name}: built {info}", flush=True)
    vocab = spec["architecture"]["vocab_size"]
    # Warm-up: one-time library/kernel set-up and first-touch of the weights
    # must not count as prefill growth.
    warm_ids = torch.randint(0, vocab, (1, 64))
    out, stats = run_step(model, use_profiler, input_ids=warm_ids)
    out, _ = run_step(
        model, use_profiler, input_ids=warm_ids[:, :1], past_key_values=out.past_key_values
    )
    info["warmup"] = stats
    del out
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    tokens_per_s: float | None = None
    for batch, tokens in runs:
        if tokens_per_s is not None:
            # Quadratic attention makes long prompts slower per token; 1.5x is a margin.
            predicted = 1.5 * batch * tokens / tokens_per_s
            if predicted > MAX_PREFILL_S or time.time() + 2 * predicted > deadline:
                skipped.append(
                    {
                        "model": name,
                        "batch": batch,
                        "prompt_tokens": tokens,
                        "predicted_prefill_s": predicted,
                    }
                )
                print(f"  skip b={batch} n={tokens}: predicted {predicted:.0f}s", flush=True)
                continue
        torch.manual_seed(1)
        ids = torch.randint(0, vocab, (batch, tokens))
        base = {"model": name, "batch": batch, "prompt_tokens": tokens}
        out, stats = run_step(model, use_profiler, input_ids=ids)
        tokens_per_s = batch * tokens / stats["seconds"]
        records.append({**base, "after": "prefill", **measure_cache(out.past_key_values), **stats})
        print(f"  b={batch} n={tokens} prefill {stats['seconds']}s", flush=True)

        next_ids = out.logits[:, -1:].argmax(-1)
        cache = out.past_key_values
        del out
        out, stats = run_step(model, use_profiler, input_ids=next_ids, past_key_values=cache)
        records.append({**base, "after": "decode1", **measure_cache(out.past_key_values), **stats})
        del out, cache, ids, next_ids
        gc.collect()
    del model
    gc.collect()
    info["skipped"] = skipped
    return records, info


def parse_runs(text: str) -> list[tuple[int, int]]:
    """'1x512,2x2048' -> [(1, 512), (2, 2048)]."""
    runs = []
    for item in text.split(","):
        batch, tokens = item.lower().split("x")
        runs.append((int(batch), int(tokens)))
    return runs


def main() -> None:
    """Measure the selected models and write the fixture."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS))
    parser.add_argument(
        "--runs", type=parse_runs, default=list(DEFAULT_RUNS), help="e.g. 1x512,2x2048"
    )
    parser.add_argument(
        "--budget-s", type=float, default=1800.0, help="stop starting runs past this"
    )
    parser.add_argument(
        "--no-profiler", action="store_true", help="skip torch allocator accounting"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    start = time.time()
    deadline = start + args.budget_s
    records: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    for name in args.models:
        if time.time() > deadline:
            models[name] = {"skipped": "time budget spent"}
            continue
        with single_thread_triangular_solve():
            recs, info = measure_model(name, args.runs, not args.no_profiler, deadline)
        records += recs
        models[name] = info
    result = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "device": "cpu",
        "threads": args.threads,
        "weights": "random, bfloat16, Qwen3_5ForCausalLM (text only)",
        "forward": (
            "model(input_ids, use_cache=True, logits_to_keep=1) under torch.inference_mode()"
        ),
        "runtime_s": round(time.time() - start, 1),
        "solve_triangular_threads": 1,
        "models": models,
        "records": records,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out} in {result['runtime_s']}s")


if __name__ == "__main__":
    main()
