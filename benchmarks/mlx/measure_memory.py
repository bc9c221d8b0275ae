"""Measure what MLX itself allocates for the Qwen3.5 architecture, built by mlx-lm on the CPU.

For each case the text model of a spec-table entry is built with mlx-lm's own `qwen3_5` /
`qwen3_5_moe` classes at its real shapes (no checkpoint: MLX's own random init), cast the way
`mlx_lm.convert` casts (everything to bfloat16 but `A_log`, the model's `cast_predicate`) and
quantized with mlx-lm's own `quantize_model` (group size 64, the model's `quant_predicate`).
Then a prompt of N tokens is prefilled exactly as `mlx_lm.generate.generate_step` does it
(chunks of `prefill_step_size`, the cache state evaluated after each, the last token through
the final step) and MLX's allocator is read:

- `weights_bytes`: the parameters' `nbytes` (and `mx.get_active_memory()` after loading),
- `kv_cache_bytes` / `linear_state_bytes`: `nbytes` of the cache objects after the prefill,
- `active_after_bytes`: `mx.get_active_memory()` after the prefill,
- `peak_bytes`: `mx.get_peak_memory()` over the prefill (reset after loading).

Run: `.venv/bin/python benchmarks/mlx/measure_memory.py > tests/fixtures/measured/mlx_memory.json`
(needs `pip install "mlx[cpu]" mlx-lm`; a few minutes on 2 cores).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx_lm
from mlx.utils import tree_flatten, tree_map_with_path
from mlx_lm.models import qwen3_5, qwen3_5_moe
from mlx_lm.models.cache import ArraysCache, KVCache
from mlx_lm.utils import quantize_model

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from qwenfit.specs.table import load_specs  # noqa: E402

PREFILL_STEP = 2048  # mlx_lm generate_step / mlx_lm.server --prefill-step-size default

# Weights at the real, full shapes: (model, precision). Loading needs no prefill.
WEIGHT_CASES = [
    (m, p)
    for m in ("qwen3.5-0.8b", "qwen3.5-2b", "qwen3.5-4b")
    for p in ("bf16", "mlx-8bit", "mlx-6bit", "mlx-4bit")
]
# Cache and peak: the first LAYERS decoder layers at the real per-layer shapes (3 Gated
# DeltaNet + 1 full-attention layer, the repeating unit), bfloat16, prefilled with N tokens.
# MLX's CPU quantized matmul runs at tens of MFLOP/s, so prefills use bfloat16 weights
# (activations, KV cache and state are the same dtype either way).
LAYERS = 4
PREFILL_CASES = [
    ("qwen3.5-0.8b", 300),
    ("qwen3.5-0.8b", 1000),
    ("qwen3.5-2b", 600),
    ("qwen3.5-4b", 257),
]
BITS = {"mlx-4bit": 4, "mlx-6bit": 6, "mlx-8bit": 8}


def text_config(name: str, layers: int | None = None) -> dict[str, object]:
    a = load_specs().get(name).architecture
    cfg: dict[str, object] = {
        "model_type": "qwen3_5_moe_text" if a.moe else "qwen3_5_text",
        "hidden_size": a.hidden_size,
        "num_hidden_layers": layers or a.num_hidden_layers,
        "num_attention_heads": a.num_attention_heads,
        "num_key_value_heads": a.num_key_value_heads,
        "head_dim": a.head_dim,
        "linear_num_key_heads": a.linear_num_key_heads,
        "linear_num_value_heads": a.linear_num_value_heads,
        "linear_key_head_dim": a.linear_key_head_dim,
        "linear_value_head_dim": a.linear_value_head_dim,
        "linear_conv_kernel_dim": a.linear_conv_kernel_dim,
        "full_attention_interval": a.full_attention_interval,
        "vocab_size": a.vocab_size,
        "tie_word_embeddings": a.tie_word_embeddings,
        "max_position_embeddings": a.max_position_embeddings,
        "intermediate_size": a.intermediate_size or 0,
    }
    if a.moe:
        cfg.update(
            num_experts=a.moe.num_experts,
            num_experts_per_tok=a.moe.num_experts_per_tok,
            moe_intermediate_size=a.moe.moe_intermediate_size,
            shared_expert_intermediate_size=a.moe.shared_expert_intermediate_size,
        )
    return cfg


def build(name: str, precision: str, layers: int | None = None) -> nn.Module:
    cfg = text_config(name, layers)
    module = qwen3_5_moe if "moe" in str(cfg["model_type"]) else qwen3_5
    model = module.Model(
        module.ModelArgs.from_dict({"model_type": cfg["model_type"], "text_config": cfg})
    )
    keep = model.cast_predicate

    def cast(path: str, x: mx.array) -> mx.array:
        return x.astype(mx.bfloat16) if keep(path) and mx.issubdtype(x.dtype, mx.floating) else x

    model.update(tree_map_with_path(cast, model.parameters()))
    if precision in BITS:
        with contextlib.redirect_stdout(sys.stderr):  # quantize_model prints its bits/weight
            quantize_model(model, {}, group_size=64, bits=BITS[precision])
    mx.eval(model.parameters())
    return model


def prefill(model: nn.Module, n: int) -> list[object]:
    cache = model.make_cache()
    prompt = mx.zeros((n,), dtype=mx.int32)
    done = 0
    while n - done > 1:
        step = min(PREFILL_STEP, n - done - 1)
        model(prompt[done : done + step][None], cache=cache)
        mx.eval([c.state for c in cache])
        done += step
        mx.clear_cache()
    logits = model(prompt[done:][None], cache=cache)[:, -1, :]
    mx.eval(logits, [c.state for c in cache])
    return cache


def nbytes(tree: object) -> int:
    return sum(v.nbytes for _, v in tree_flatten(tree) if isinstance(v, mx.array))


def measure_weights(name: str, precision: str) -> dict[str, object]:
    mx.clear_cache()
    model = build(name, precision)
    mx.clear_cache()
    row = {
        "model": name,
        "precision": precision,
        "weights_bytes": nbytes(model.parameters()),
        "active_loaded_bytes": mx.get_active_memory(),
    }
    del model
    mx.clear_cache()
    return row


def measure_prefill(name: str, tokens: int) -> dict[str, object]:
    mx.clear_cache()
    model = build(name, "bf16", LAYERS)
    mx.clear_cache()
    weights = nbytes(model.parameters())
    active_loaded = mx.get_active_memory()
    mx.reset_peak_memory()
    t = time.time()
    cache = prefill(model, tokens)
    kv = sum(c.nbytes for c in cache if isinstance(c, KVCache))
    state = sum(c.nbytes for c in cache if isinstance(c, ArraysCache))
    row = {
        "model": name,
        "layers": LAYERS,
        "precision": "bf16",
        "prompt_tokens": tokens,
        "weights_bytes": weights,
        "active_loaded_bytes": active_loaded,
        "kv_cache_bytes": kv,
        "linear_state_bytes": state,
        "active_after_bytes": mx.get_active_memory(),
        "peak_bytes": mx.get_peak_memory(),
        "seconds": round(time.time() - t, 1),
    }
    del model, cache
    mx.clear_cache()
    return row


def main() -> None:
    out = {
        "what": "MLX accounting (get_active_memory / get_peak_memory, cache nbytes) "
        "of the Qwen3.5 text model built by mlx-lm on the CPU backend: weights at full real "
        f"shapes; cache and peak on the first {LAYERS} layers at real shapes, prefilled as "
        "mlx_lm.generate_step does",
        "script": "benchmarks/mlx/measure_memory.py",
        "mlx": mx.__version__,
        "mlx_lm": mlx_lm.__version__,
        "prefill_step_size": PREFILL_STEP,
        "weights": [measure_weights(m, p) for m, p in WEIGHT_CASES],
        "prefill": [measure_prefill(m, n) for m, n in PREFILL_CASES],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
