"""What each runtime does by default, and the element sizes of its cache types.

Every constant names the runtime source it comes from; `docs/estimation.md` repeats them with links.
"""

from __future__ import annotations

from qwenfit.errors import UnsupportedError
from qwenfit.hardware.machine import Machine
from qwenfit.specs.table import RUNTIMES, Format, ModelSpec, RuntimeName, SpecTable
from qwenfit.units import GiB

KV_CACHE_TYPES = ("f16", "bf16", "q8_0", "q4_0", "fp8")

# ggml block layouts (ggml/src/ggml-common.h): q8_0 = 32 int8 + one f16 scale = 34 bytes per 32
# values; q4_0 = 16 bytes of nibbles + one f16 scale = 18 bytes per 32 values.
KV_BYTES_PER_32 = {"f16": 64, "bf16": 64, "q8_0": 34, "q4_0": 18, "fp8": 32}

# llama.cpp (src/llama-context.cpp): n_ctx is padded to a multiple of 256 cells.
LLAMACPP_CTX_PAD = 256
# llama.cpp common/common.h defaults.
LLAMACPP_DEFAULT_UBATCH = 512
LLAMACPP_DEFAULT_BATCH = 2048
# llama-server --fit (common/common.h): never below this context, leave this much free per device.
LLAMACPP_FIT_MIN_CTX = 4096
LLAMACPP_FIT_TARGET_FREE = 1 * GiB
# llama-server context checkpoints for hybrid models (common/common.h: n_ctx_checkpoints = 32,
# one every checkpoint_min_step = 8192 tokens): each holds one sequence's recurrent state, in
# host RAM.
LLAMACPP_MAX_CHECKPOINTS = 32

# vLLM claims this fraction of each card's total memory at start. Its own default is 0.92 in
# vLLM 0.32 / 0.33 (vllm/config/cache.py; 0.9 in older releases): qwenfit passes 0.9 explicitly
# in every command it prints, so the check and the command agree on any version.
VLLM_GPU_MEMORY_UTILIZATION = 0.9

# transformers has no context setting of its own; estimates without --context use this.
TRANSFORMERS_DEFAULT_CONTEXT = 32768


def check_runtime(name: str) -> RuntimeName:
    if not isinstance(name, str):
        raise UnsupportedError(f"invalid runtime {name!r:.60}; allowed: {', '.join(RUNTIMES)}")
    for r in RUNTIMES:
        if name.lower() == r:
            return r
    if name.lower() in {"llamacpp", "llama-cpp", "llama-server"}:
        return "llama.cpp"
    raise UnsupportedError(f"unknown runtime {name!r}; allowed: {', '.join(RUNTIMES)}")


def check_quant(table: SpecTable, spec: ModelSpec, runtime: RuntimeName, quant: str) -> str:
    """Normalise a precision name and check the runtime can load it for this model."""
    q = quant.strip().lower().replace("_int4", "-int4")
    if q not in table.precisions:
        raise UnsupportedError(
            f"unknown precision {quant!r}; allowed: {', '.join(table.precisions)}"
        )
    allowed = loadable_precisions(table, spec, runtime)
    if q not in allowed:
        raise UnsupportedError(
            f"{runtime} cannot load {spec.name} at {q}; available: {', '.join(allowed) or 'none'}"
        )
    return q


def loadable_precisions(table: SpecTable, spec: ModelSpec, runtime: RuntimeName) -> list[str]:
    formats = table.runtimes[runtime].formats
    return [a.precision for a in spec.artifacts if a.format in formats]


def check_kv_cache(table: SpecTable, runtime: RuntimeName, kv: str | None) -> str:
    """Resolve the KV cache type; default: the runtime's own default (16-bit)."""
    allowed = table.runtimes[runtime].kv_cache_types
    if kv is None:
        return allowed[0]
    k = kv.strip().lower()
    if k not in allowed:
        raise UnsupportedError(
            f"{runtime} has no KV cache type {kv!r}; allowed: {', '.join(allowed)}"
        )
    return k


def kv_bytes(elements: int, kv_type: str) -> int:
    """Bytes of `elements` cache values of `kv_type` (whole blocks; rows are multiples of 32)."""
    return elements * KV_BYTES_PER_32[kv_type] // 32


def default_runtime(machine: Machine | None) -> RuntimeName:
    """What the recommender uses when the user names no runtime.

    vLLM when a datacenter-class NVIDIA GPU (40 GiB or more) is present and vLLM is installed;
    otherwise llama.cpp when llama-server is installed and Ollama is not; otherwise Ollama, the
    easiest way to run a GGUF on a consumer GPU or a CPU.
    """
    if machine is None:
        return "ollama"
    found = machine.runtimes
    big_nvidia = any(
        g.vendor == "nvidia" and g.memory_total_bytes >= 40 * GiB for g in machine.gpus
    )
    if big_nvidia and "vllm" in found:
        return "vllm"
    if "llama.cpp" in found and "ollama" not in found:
        return "llama.cpp"
    return "ollama"


# The artifact each runtime loads (the spec table's `runtimes[...].formats`, one each).
ARTIFACT_FORMAT: dict[RuntimeName, Format] = {
    "llama.cpp": "gguf",
    "ollama": "ollama",
    "vllm": "safetensors",
    "transformers": "safetensors",
}


def runtime_for(spec: ModelSpec, preferred: RuntimeName) -> RuntimeName:
    """`preferred`, unless the model has nothing it can load (a GGUF-only or safetensors-only
    checkpoint): then the first runtime that can."""
    formats = {a.format for a in spec.artifacts}
    order: tuple[RuntimeName, ...] = (preferred, "llama.cpp", "vllm", "transformers")
    return next((r for r in order if ARTIFACT_FORMAT[r] in formats), preferred)


def default_quant(spec: ModelSpec, runtime: RuntimeName) -> str | None:
    """The precision a user gets without asking: Ollama's tag default, Q4_K_M GGUF, BF16 weights,
    else the only build a checkpoint has."""
    fmt = ARTIFACT_FORMAT[runtime]
    usual = {"llama.cpp": "q4_k_m", "vllm": "bf16", "transformers": "bf16"}.get(runtime)
    builds = [a.precision for a in spec.artifacts if a.format == fmt]
    if usual in builds:
        return usual
    return builds[0] if builds else None


# Ollama >= 0.15.5 (server/routes.go, "vram-based default context"): without
# OLLAMA_CONTEXT_LENGTH the default num_ctx follows the total VRAM of all GPUs, with thresholds
# slightly under 48 / 24 GiB; older releases used 4096 everywhere. Capped at the trained context.
OLLAMA_CONTEXT_BY_VRAM: tuple[tuple[int, int], ...] = (
    (47 * GiB, 262144),
    (23 * GiB, 32768),
    (0, 4096),
)


def ollama_default_context(machine: Machine | None) -> int:
    vram = machine.vram_total_bytes if machine else 0
    for floor, ctx in OLLAMA_CONTEXT_BY_VRAM:
        if vram >= floor:
            return ctx
    return OLLAMA_CONTEXT_BY_VRAM[-1][1]
