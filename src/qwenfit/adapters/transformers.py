"""Hugging Face transformers: safetensors, eager tensors, device_map placement, no server.

It has no context setting of its own: estimates without a context use 32,768 tokens (the Qwen3.5
cards' recommended output length for thinking).
"""

from __future__ import annotations

from qwenfit.adapters.base import Adapter

ADAPTER = Adapter(
    name="transformers",
    aliases=(),
    format="safetensors",
    sizing="eager",
    default_quant="bf16",
    search_kv_types=("bf16",),
    drops_vision=True,  # the text-only model class
    vendors=("nvidia", "amd", "apple", "other"),
    context_default="fixed",
    fixed_context=32768,
    layer_offload=True,  # device_map="auto" spills layers to the CPU
    python_module=("transformers", "transformers"),
)
