"""What each runtime does by default, and the element sizes of its cache types.

Every constant names the runtime source it comes from; `docs/estimation.md` repeats them with links.
"""

from __future__ import annotations

from qwenfit.adapters import (
    LLAMACPP,
    MLX,
    OLLAMA,
    RUNTIMES,
    TRANSFORMERS,
    VLLM,
    RuntimeName,
    adapter,
    runtime_named,
)
from qwenfit.errors import UnsupportedError, UsageError
from qwenfit.hardware.machine import Machine
from qwenfit.specs.table import Artifact, ModelSpec, SpecTable
from qwenfit.units import GiB, MiB

# ggml block layouts (ggml/src/ggml-common.h): q8_0 = 32 int8 + one f16 scale = 34 bytes per 32
# values; q4_0 = 16 bytes of nibbles + one f16 scale = 18 bytes per 32 values.
KV_BYTES_PER_32 = {"f16": 64, "bf16": 64, "q8_0": 34, "q4_0": 18, "fp8": 32}

# llama.cpp (src/llama-context.cpp): n_ctx is padded to a multiple of 256 cells.
LLAMACPP_CTX_PAD = 256
# llama.cpp common/common.h default micro-batch.
LLAMACPP_DEFAULT_UBATCH = 512
# llama-server --fit (common/common.h): never below this context, leave this much free per device.
LLAMACPP_FIT_MIN_CTX = 4096
LLAMACPP_FIT_TARGET_FREE = 1 * GiB
# llama-server context checkpoints for hybrid models (common/common.h: n_ctx_checkpoints = 32
# per slot, checkpoint_min_step = 8192): each is a std::vector copy in host RAM of one slot's
# recurrent state (tools/server/server-context.cpp create_checkpoint), and with MTP also of the
# draft context's KV for the slot's tokens. The list grows to the cap; checkpoints closer than
# checkpoint_min_step to an earlier one are evicted only once it is full.
LLAMACPP_MAX_CHECKPOINTS = 32
# llama-server --cache-ram (common/common.h: cache_ram_mib = 8192): the prompt cache of finished
# slots' states (KV + recurrent state + their checkpoints), evicted oldest-first at the limit.
LLAMACPP_CACHE_RAM = 8192 * MiB
# llama-server --spec-draft-n-max (common/common.h: draft.n_max = 3); with --spec-type draft-mtp
# the target context keeps 1 + n_max recurrent-state rows per sequence for rollback
# (common/common.cpp: cparams.n_rs_seq = need_n_rs_seq(); src/llama-memory-recurrent.cpp).
LLAMACPP_SPEC_DRAFT_N_MAX = 3
# vLLM recipes' MTP depth for every Qwen3.6/3.8 model: {"method":"mtp","num_speculative_tokens":3}
# (github.com/vllm-project/recipes models/Qwen/Qwen3.8-27B.yaml).
VLLM_NUM_SPECULATIVE_TOKENS = 3


def mtp_speed_factor(runtime: RuntimeName, moe: bool) -> float:
    """Decode-speed factor of MTP for one sequence, from published runs (the adapters' `mtp_speed`;
    docs/estimation.md, "MTP"): dense 27B on llama-server, n-max 2: 1.43x-1.83x across
    3090/4090/A6000/R9700/7900 XTX, acceptance 0.5-0.95 (github.com/sudoingX/qwen38-mtp README and
    sweeps/rtx-4090.md); MoE 35B-A3B: 0.95x at depth 0 (ggml-org/llama.cpp PR #22673, comment by
    shinishiho) to 1.1-1.2x (ikawrakow/ik_llama.cpp PR #1815), i.e. no reliable gain; vLLM MoE
    2.4T MTP-1: +3.4 % at concurrency 1 (vllm-project/recipes Qwen3.8-2.4T-A95B.yaml); vLLM dense
    27B: the llama.cpp dense factor is used (the recipe reports acceptance 0.77-0.92, not speed)."""
    factors = adapter(runtime).mtp_speed
    if factors is None:
        return 1.0
    return factors[1] if moe else factors[0]


# vLLM claims this fraction of each card's total memory at start (its adapter's `gpu_share`).
VLLM_GPU_MEMORY_UTILIZATION = adapter(VLLM).gpu_share or 1.0


def check_mtp(runtime: RuntimeName, mtp: bool) -> None:
    with_mtp = [r for r in RUNTIMES if adapter(r).mtp_speed is not None]
    if mtp and runtime not in with_mtp:
        raise UnsupportedError(
            f"--mtp needs a runtime with MTP speculative decoding ({', '.join(with_mtp)}); "
            f"got {runtime}"
        )


def check_runtime(name: str) -> RuntimeName:
    """A runtime as the user spelled it; UsageError naming the allowed ones."""
    return runtime_named(name)


def normal_precision(table: SpecTable, quant: str) -> str:
    """A precision name as the table spells it ('Q4_K_M' -> 'q4_k_m'); UsageError if unknown."""
    if not isinstance(quant, str):
        raise UsageError(f"invalid quant {quant!r:.60}: must be a precision name")
    q = quant.strip().lower().replace("_int4", "-int4")
    if q not in table.precisions:
        raise UnsupportedError(
            f"unknown precision {quant!r}; allowed: {', '.join(table.precisions)}"
        )
    return q


def check_quant(table: SpecTable, spec: ModelSpec, runtime: RuntimeName, quant: str) -> str:
    """Normalise a precision name and check the runtime can load it for this model."""
    q = normal_precision(table, quant)
    allowed = loadable_precisions(table, spec, runtime)
    hub = ollama_hub_precisions(spec) if runtime == OLLAMA else []
    if q not in allowed and q not in hub:
        extra = f"; from the Hub as hf.co/<repo>:<QUANT>: {', '.join(hub)}" if hub else ""
        raise UnsupportedError(
            f"{runtime} cannot load {spec.name} at {q}; available: "
            f"{', '.join(allowed) or 'none'}{extra}"
        )
    return q


def loadable_precisions(table: SpecTable, spec: ModelSpec, runtime: RuntimeName) -> list[str]:
    formats = table.runtimes[runtime].formats
    return [a.precision for a in spec.artifacts if a.format in formats]


def ollama_hub_precisions(spec: ModelSpec) -> list[str]:
    """GGUF builds with no Ollama library tag: Ollama pulls them as `hf.co/<repo>:<QUANT>`
    (Hugging Face hub docs, docs/hub/ollama.md); Ollama >= 0.30 loads upstream qwen35 GGUFs
    through llama-server (ollama/ollama commit 9db4bdbad, #16031)."""
    tagged = {a.precision for a in spec.artifacts if a.format == adapter(OLLAMA).format}
    return [a.precision for a in spec.artifacts if a.format == "gguf" and a.precision not in tagged]


def artifact_for(spec: ModelSpec, runtime: RuntimeName, quant: str) -> Artifact | None:
    """The artifact `runtime` loads at `quant`: for Ollama a library tag, else the Hub GGUF."""
    found = spec.artifact(quant, adapter(runtime).format)
    if found is None and runtime == OLLAMA:  # a Hub GGUF that Ollama runs itself
        return spec.artifact(quant, adapter(LLAMACPP).format)
    return found


def check_kv_cache(table: SpecTable, runtime: RuntimeName, kv: str | None) -> str:
    """Resolve the KV cache type; default: the runtime's own default (16-bit)."""
    allowed = table.runtimes[runtime].kv_cache_types
    if kv is None:
        return allowed[0]
    if not isinstance(kv, str):
        raise UsageError(f"invalid kv_cache {kv!r:.60}: must be one of {', '.join(allowed)}")
    k = kv.strip().lower()
    if k not in allowed:
        raise UnsupportedError(
            f"{runtime} has no KV cache type {kv!r}; allowed: {', '.join(allowed)}"
        )
    return k


def kv_bytes(elements: int, kv_type: str) -> int:
    """Bytes of `elements` cache values of `kv_type` (whole blocks; rows are multiples of 32)."""
    return elements * KV_BYTES_PER_32[kv_type] // 32


# NVIDIA GPUs sold for servers (the catalog's datacenter parts, and any card of 40 GiB or more):
# the people who run them serve with vLLM. GeForce cards are desktop cards (Ollama, llama.cpp).
DATACENTER_MIN_MEMORY = 40 * GiB
DATACENTER_NAMES = ("A10", "A16", "A2", "A30", "A40", "L4", "L20", "L40", "L40S", "T4")
# A box with this many GPUs is a server whatever the cards: tensor parallel needs vLLM.
SERVER_MIN_GPUS = 4


# Which runtimes have a GPU build for each vendor: each adapter's `vendors`. Apple Silicon:
# vLLM's macOS build runs on the CPU only ("vLLM has experimental support for macOS with Apple
# Silicon ... currently only supports FP32 and FP16 on CPU", https://docs.vllm.ai/en/latest/
# getting_started/installation/cpu.html), so qwenfit never plans vLLM there. AMD: llama.cpp has a
# HIP/ROCm backend (docs/build.md "HIP"), Ollama ships ROCm builds (docs/gpu.md "AMD Radeon"),
# vLLM has a ROCm build (docs.vllm.ai installation/gpu "ROCm"), transformers runs on PyTorch's
# ROCm wheels. MLX runs on Apple Silicon's Metal only (ml-explore/mlx README).
def builds_for(vendor: str) -> list[RuntimeName]:
    return [r for r in RUNTIMES if vendor in adapter(r).vendors]


def is_apple(machine: Machine | None) -> bool:
    """An Apple Silicon machine: its GPU is Apple's (Metal, memory shared with the CPU)."""
    return machine is not None and any(g.vendor == "apple" for g in machine.gpus)


def is_gfx1151(machine: Machine | None) -> bool:
    """Strix Halo (Ryzen AI Max, Radeon 8060S / 8050S): vLLM has no upstream build for its
    gfx1151 GPU (vllm-project/vllm#16621); llama.cpp (HIP, Vulkan) and Ollama run there."""
    return machine is not None and any(
        "gfx1151" in (g.architecture or "") or "8060S" in g.name or "8050S" in g.name
        for g in machine.gpus
    )


def check_runtime_on(machine: Machine | None, runtime: RuntimeName) -> RuntimeName:
    """`runtime`, if it has a GPU build for the machine's GPUs; UsageError (exit 2) if not."""
    if runtime == VLLM and is_apple(machine):
        raise UnsupportedError(
            "vLLM has no Apple Silicon GPU build (its macOS build runs on the CPU only); "
            "use --runtime llama.cpp or --runtime ollama, which run on Metal"
        )
    if runtime == VLLM and is_gfx1151(machine):
        raise UnsupportedError(
            "vLLM has no upstream build for Strix Halo's gfx1151 GPU (vllm-project/vllm#16621); "
            "use --runtime llama.cpp or --runtime ollama"
        )
    if runtime == VLLM and machine is not None and not machine.gpus:
        raise UnsupportedError(  # a usage error, never "nothing fits"
            "vLLM needs a GPU and this machine has none; for a CPU plan use --runtime llama.cpp "
            "or --runtime ollama"
        )
    for g in machine.gpus if machine else []:
        if g.vendor not in adapter(runtime).vendors:
            raise UnsupportedError(
                f"{runtime} has no build for {g.vendor} GPUs; allowed: "
                + ", ".join(builds_for(g.vendor))
            )
    return runtime


def is_datacenter(machine: Machine) -> bool:
    """NVIDIA or AMD server GPUs, or a box with SERVER_MIN_GPUS GPUs or more."""

    def server_card(name: str, memory: int) -> bool:
        short = name.upper().replace("NVIDIA", "").replace("AMD", "").strip()
        return (
            memory >= DATACENTER_MIN_MEMORY
            or short.split(" ")[0] in DATACENTER_NAMES
            or short.startswith("INSTINCT")
            or short.startswith("MI")
        )

    # Unified-memory boxes (DGX Spark, Jetson, Strix Halo) are desktops: one user, GGUF builds.
    gpus = [g for g in machine.gpus if g.vendor in ("nvidia", "amd") and not g.unified_memory]
    return bool(gpus) and (
        len(gpus) >= SERVER_MIN_GPUS or any(server_card(g.name, g.memory_total_bytes) for g in gpus)
    )


def default_runtime(machine: Machine | None) -> RuntimeName:
    """The runtime a person on `machine` would use, for probed and hypothetical machines alike.

    NVIDIA/AMD datacenter GPUs and multi-GPU servers: vLLM. Apple Silicon: MLX (mlx-lm), what
    most Mac users run. Consumer GPUs and CPUs: Ollama, or llama.cpp when llama-server is
    installed and Ollama is not. Apple never gets vLLM. What is installed wins: when the
    class's runtime is missing but another one that runs on this hardware is installed, that
    one is used.
    """
    if machine is None:
        return OLLAMA
    found = machine.runtimes
    allowed: tuple[RuntimeName, ...] = (LLAMACPP, OLLAMA, VLLM)
    only_llamacpp = LLAMACPP in found and OLLAMA not in found
    desktop: RuntimeName = LLAMACPP if only_llamacpp else OLLAMA
    preferred: RuntimeName = VLLM if is_datacenter(machine) else desktop
    if is_apple(machine):
        allowed, preferred = (MLX, LLAMACPP, OLLAMA), MLX
    if not machine.gpus:  # vLLM needs a GPU: a CPU machine gets a CPU plan, installed or not
        allowed = (LLAMACPP, OLLAMA)
    if preferred in found or not found:
        return preferred
    installed = [r for r in allowed if r in found]
    return installed[0] if installed else preferred


def runtime_for(spec: ModelSpec, preferred: RuntimeName) -> RuntimeName:
    """`preferred`, unless the model has nothing it can load (a GGUF-only or safetensors-only
    checkpoint): then the first runtime that can."""
    formats = {a.format for a in spec.artifacts}
    order: tuple[RuntimeName, ...] = (preferred, LLAMACPP, VLLM, TRANSFORMERS)
    return next((r for r in order if adapter(r).format in formats), preferred)


def default_quant(spec: ModelSpec, runtime: RuntimeName) -> str | None:
    """The precision a user gets without asking: Ollama's tag default, Q4_K_M GGUF, BF16 weights,
    else the only build a checkpoint has."""
    fmt = adapter(runtime).format
    usual = adapter(runtime).default_quant
    builds = [a.precision for a in spec.artifacts if a.format == fmt]
    gguf = adapter(LLAMACPP).format
    if runtime == OLLAMA and all(a.format == gguf for a in spec.artifacts):
        builds = ollama_hub_precisions(spec)  # a GGUF checkpoint: Ollama runs the file itself
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
