"""Ollama: library tags (or Hub GGUFs), llama.cpp's allocator, its scheduler's layer split.

Default context by total VRAM (ollama/ollama server/routes.go, "vram-based default context",
memory.runtimes.OLLAMA_CONTEXT_BY_VRAM); the scheduler splits whole layers between GPU and RAM
and does not offload experts on their own (docs/placement.md). No MTP drafting. Models live in
~/.ollama/models or OLLAMA_MODELS (docs/faq.md "Where are models stored?").
"""

from __future__ import annotations

from qwenfit.adapters.base import Adapter

ADAPTER = Adapter(
    name="ollama",
    aliases=(),
    format="ollama",
    sizing="gguf",
    default_quant=None,  # the library tag's default, else the Hub GGUF's first build
    search_kv_types=("f16", "q8_0", "q4_0"),
    drops_vision=False,  # a library tag carries its vision tower
    vendors=("nvidia", "amd", "apple", "other"),
    context_default="by_vram",
    flash_attn=True,
    layer_offload=True,
    executables=("ollama",),
    model_folder_env="OLLAMA_MODELS",
    home_model_folder=".ollama/models",
    bundles_llamacpp=True,
)
