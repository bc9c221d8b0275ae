"""vLLM: safetensors checkpoints, paged KV blocks, a fixed share of each GPU claimed at start.

qwenfit passes --gpu-memory-utilization 0.9 in every command it prints (vLLM's own default is
0.92 in 0.32 / 0.33, vllm/config/cache.py), so the check and the command agree on any version.
No Apple Silicon GPU build (its macOS build runs on the CPU only, docs.vllm.ai installation/cpu);
ROCm and CUDA builds. The trained context is the default --max-model-len. Tensor parallel within
a node, pipeline parallel across nodes with Ray. MTP: speculative-config method mtp.
"""

from __future__ import annotations

from qwenfit.adapters.base import Adapter

ADAPTER = Adapter(
    name="vllm",
    aliases=(),
    format="safetensors",
    sizing="paged",
    default_quant="bf16",
    # fp8 KV is not searched: corrupted output reported on this hybrid family (vLLM #42179)
    search_kv_types=("bf16",),
    drops_vision=True,  # --language-model-only
    vendors=("nvidia", "amd", "other"),
    context_default="trained",
    gpu_share=0.9,
    mtp_speed=(1.6, 1.03),
    multi_node=True,
    executables=("vllm",),
    python_module=("vllm", "vllm"),
    per_request_sampling=True,  # presence_penalty is a request field
)
