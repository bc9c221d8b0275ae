"""Is a checkpoint's config the Qwen3.5 hybrid that qwenfit's memory model covers?

qwenfit sizes one layout: Gated DeltaNet layers with a fixed per-sequence state, every Nth layer
a gated full-attention layer with a KV cache, dense or routed-expert FFNs, one token embedding.
Newer Qwen releases reuse the names but not always the layout. Qwen3.8-Flash-Next
(`model_type: qwen4_exp`, transformers `models/qwen4_exp/configuration_qwen4_exp.py`) adds
4-stream hyper-connections (`hc_*`), per-layer n-gram embedding tables (`ngram_*`, `ple_*`,
about 51B parameters that can live in host RAM) and sparse-attention indexers (`indexer_*`):
sizing it with the Qwen3.5 formulas would be wrong, so it is refused with the field that
differs.
"""

from __future__ import annotations

from typing import Any

# Releases known to be another architecture, and what makes them so.
OTHER_ARCHITECTURES = {
    "qwen4_exp": "Qwen3.8-Flash-Next's architecture (sparse attention, hyper-connections, "
    "n-gram embedding tables)",
    "qwen4_exp_text": "Qwen3.8-Flash-Next's text model (sparse attention, hyper-connections, "
    "n-gram embedding tables)",
    "qwen3_next": "Qwen3-Next, an earlier hybrid with other layer shapes",
}
# Config keys (prefixes) of components the memory model has no term for.
EXTRA_COMPONENTS = {
    "hc_": "hyper-connection residual streams",
    "ngram_": "n-gram embedding tables",
    "ple_": "per-layer embeddings",
    "indexer_": "a sparse-attention indexer",
    "sliding_window": "sliding-window attention",
}
LAYER_TYPES = {"linear_attention", "full_attention"}


def unsupported_reason(config: dict[str, Any]) -> str | None:
    """One line naming the config field that takes `config` outside the Qwen3.5 layout, or
    None when qwenfit's memory model covers it. `config` is config.json (nested or flat)."""
    text = config.get("text_config")
    sections = [config, text] if isinstance(text, dict) else [config]
    for section in sections:
        mt = section.get("model_type")
        if isinstance(mt, str) and mt in OTHER_ARCHITECTURES:
            return (
                f"model_type {mt!r} is {OTHER_ARCHITECTURES[mt]}; qwenfit sizes the Qwen3.5 "
                "hybrid layout only"
            )
    for section in sections:
        for key, value in section.items():
            for prefix, what in EXTRA_COMPONENTS.items():
                if key.startswith(prefix) and value not in (None, 0, False, [], {}):
                    return (
                        f"config field {key!r} adds {what}, which the Qwen3.5 memory model has "
                        "no term for"
                    )
        types = section.get("layer_types")
        if isinstance(types, list):
            other = sorted({str(t) for t in types} - LAYER_TYPES)
            if other:
                return (
                    f"layer_types has {other[0]!r}; qwenfit sizes linear_attention and "
                    "full_attention layers only"
                )
    return None
