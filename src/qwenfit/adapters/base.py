"""What a runtime adapter declares: the facts every stage asks of a runtime, in one record.

Stages never compare runtime names: they ask the runtime's adapter (`adapter(name)`) for the
trait that decides what they do (its artifact format, whether llama.cpp's allocator sizes it,
the share of each GPU it claims, how it picks a default context, ...). The values live in one
module per runtime beside this one, each with its sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RuntimeName = Literal["llama.cpp", "ollama", "vllm", "transformers", "mlx"]
Format = Literal["safetensors", "gguf", "ollama", "mlx"]
# How the memory stage sizes a runtime's parts: llama.cpp's allocator (GGUF files), vLLM's
# paged KV blocks, transformers' eager tensors, MLX's arrays.
Sizing = Literal["gguf", "paged", "eager", "arrays"]
# How a runtime picks its context when none is given.
ContextDefault = Literal["fitted", "by_vram", "fixed", "trained"]
Vendor = Literal["nvidia", "amd", "apple", "other"]


@dataclass(frozen=True)
class Adapter:
    """One runtime's declarations (see the module of each runtime for the sources)."""

    name: RuntimeName
    aliases: tuple[str, ...]  # other spellings accepted for --runtime
    format: Format  # the artifact it loads
    sizing: Sizing
    default_quant: str | None  # the precision a user gets without asking (None: first build)
    search_kv_types: tuple[str, ...]  # KV cache types the recommender tries, best first
    drops_vision: bool  # can serve text only (the recommender may leave the tower out)
    vendors: tuple[Vendor, ...]  # GPU vendors it has a build for
    context_default: ContextDefault
    fixed_context: int | None = None  # for context_default "fixed"
    gpu_share: float | None = None  # share of each GPU's total memory claimed at start
    mtp_speed: tuple[float, float] | None = None  # MTP decode factor (dense, MoE); None: no MTP
    flash_attn: bool = False  # has llama.cpp's flash-attention switch
    expert_offload: bool = False  # can keep MoE experts in RAM (--n-cpu-moe)
    layer_offload: bool = False  # can keep layers in RAM when the GPUs are too small
    host_ram_caches: bool = False  # llama-server's prompt cache and context checkpoints
    multi_node: bool = False  # runs one model across machines
    executables: tuple[str, ...] = ()  # its command (found on PATH: installed, unless a package)
    python_module: tuple[str, str] | None = None  # (import name, distribution): installed if so
    model_folder_env: str | None = None  # variable naming where it downloads models
    home_model_folder: str | None = None  # else this folder below HOME (None: the Hub cache)
    per_request_sampling: bool = False  # the server takes sampling only per request
    bundles_llamacpp: bool = False  # runs its own build of llama.cpp (sizes are llama.cpp's)

    @property
    def gguf(self) -> bool:
        """Sized by llama.cpp's allocator from a GGUF build (llama.cpp, Ollama)."""
        return self.sizing == "gguf"
