"""llama.cpp's llama-server: GGUF files, its own allocator, --fit, offload of experts and layers.

Defaults from llama.cpp's common/common.h (ggml-org/llama.cpp): n_ctx 0 is the trained context,
lowered by --fit to what the devices hold; flash attention auto; prompt cache (--cache-ram) and
context checkpoints kept in host RAM; `-ot` / `--n-cpu-moe` keep routed experts in RAM; MTP
drafting with --spec-type draft-mtp (speed factors: docs/estimation.md, "MTP").
"""

from __future__ import annotations

from qwenfit.adapters.base import Adapter

ADAPTER = Adapter(
    name="llama.cpp",
    aliases=("llamacpp", "llama-cpp", "llama-server"),
    format="gguf",
    sizing="gguf",
    default_quant="q4_k_m",
    search_kv_types=("f16", "q8_0", "q4_0"),
    drops_vision=True,  # --no-mmproj
    vendors=("nvidia", "amd", "apple", "other"),  # CUDA, HIP, Metal, Vulkan / CPU
    context_default="fitted",
    mtp_speed=(1.6, 1.0),
    flash_attn=True,
    expert_offload=True,
    layer_offload=True,
    host_ram_caches=True,
    executables=("llama-server",),
    model_folder_env="LLAMA_CACHE",
)
