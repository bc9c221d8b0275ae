"""Decode and prefill speed (docs/estimation.md, Speed).

Decode: generating a token reads the dense weights, the routed experts a token picks, the
sequence's KV cache up to the tokens it holds and its Gated DeltaNet state, wherever each
lives. Each kind of bytes is read at its own fitted share of the device's bandwidth; a layer
also costs a fixed time per token on each backend (kernel launches, synchronisation), which
is what holds small models back on fast devices. Tensor-parallel ranks run in parallel, layer
splits one after another. With N sequences a step reads the weights once (MoE: the union of the
experts they route to), KV and state once per sequence, and takes no less than its FLOPs at the
prefill rate.

Prefill: matmul FLOPs (dense and routed-expert at their own efficiency) plus attention FLOPs,
which grow with the tokens already in the cache, over the dense FP16 tensor throughput of the
GPU (`data/gpus.json`), plus a fixed cost per layer and token; a server adds a fixed cost per
request to the time to first token.

The constants come from `memory.calibration` (fitted at build time to cited measurements).
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenfit.adapters import LLAMACPP, MLX, OLLAMA, VLLM
from qwenfit.hardware.machine import GPU, Machine
from qwenfit.memory.calibration import Backend, Calibration, DeviceKind, current
from qwenfit.memory.layout import gpu_index_of
from qwenfit.memory.record import Estimate
from qwenfit.memory.runtimes import mtp_speed_factor
from qwenfit.specs import arch
from qwenfit.specs.table import ModelSpec, SpecTable

# RAM reads below this share of the total (the token-embedding row, say) do not need a RAM
# bandwidth to be known.
NEGLIGIBLE = 0.01
# The prompt length llama-bench's pp512, the usual published prefill figure, uses.
PREFILL_REFERENCE_TOKENS = 512
# Runtimes whose time to first token goes through llama-server's request handling.
SERVER_RUNTIMES = (LLAMACPP, OLLAMA)
BYTE_KINDS = ("weights", "experts", "kv", "state")


def device_kind(gpu: GPU | None) -> DeviceKind:
    """Apple's GPUs are their own kind; every other GPU, unified memory or not (Strix Halo,
    DGX Spark), is fitted with the discrete GPUs: their measured efficiencies are those."""
    if gpu is None:
        return "cpu"
    return "apple" if gpu.vendor == "apple" else "gpu"


def backend_of(gpu: GPU | None) -> Backend:
    """The llama.cpp backend a device runs on by default."""
    if gpu is None:
        return "cpu"
    # by vendor, unified memory or not: a Strix Halo runs ROCm, a DGX Spark CUDA
    return {"apple": "metal", "nvidia": "cuda", "amd": "rocm"}.get(  # type: ignore[return-value]
        gpu.vendor, "vulkan"
    )


def spec_of(est: Estimate, table: SpecTable) -> ModelSpec:
    """The spec `est` was computed for (any checkpoint), or its table row for a record read
    back from JSON."""
    return est.spec or table.get(est.model)


def read_bytes(est: Estimate) -> dict[int | None, int]:
    """Bytes read per generated token at a full context, by GPU index (None: host RAM)."""
    out: dict[int | None, int] = {}
    for p in est.parts:
        out[p.device] = out.get(p.device, 0) + p.read_per_token_bytes
    return out


def reads_by_kind(
    est: Estimate, depth: int, sequences: int = 1
) -> dict[int | None, dict[str, float]]:
    """Bytes one decode step reads, by device and kind of bytes, with `depth` tokens in each
    sequence's KV cache (llama.cpp and vLLM attend only over the cells in use)."""
    fill = min(1.0, depth / est.context) if est.context else 1.0
    out: dict[int | None, dict[str, float]] = {}
    for p in est.parts:
        if not p.read_per_token_bytes:
            continue
        n: float
        if p.part == "kv_cache":
            kind, n = "kv", p.read_per_token_bytes * fill * sequences
        elif p.part == "linear_state":
            kind, n = "state", p.read_per_token_bytes * sequences
        elif p.part == "weights" and p.read_per_token_bytes < p.bytes:
            # MoE: each sequence routes to its own experts; the union of `sequences` draws
            kind = "experts" if p.detail.startswith("routed experts") else "weights"
            n = p.bytes * (1 - (1 - p.read_per_token_bytes / p.bytes) ** sequences)
        else:
            kind, n = "weights", p.read_per_token_bytes
        row = out.setdefault(p.device, dict.fromkeys(BYTE_KINDS, 0.0))
        row[kind] += n
    return out


def _gpu_of(machine: Machine, est: Estimate, device: int) -> GPU | None:
    """The GPU record a part's device runs on, matched by its index (not its position)."""
    index = gpu_index_of(est, device)
    return next((g for g in machine.gpus if g.index == index), None)


def byte_seconds(
    row: dict[str, float],
    bandwidth: float,
    kind: DeviceKind,
    cal: Calibration,
    mlx: bool,
    backend: Backend,
) -> float:
    """Seconds to read one token's bytes (`row`, by kind) at `bandwidth`, each kind at its
    fitted efficiency; the fixed per-layer costs are added by the caller."""
    weights = cal.mlx_weights if mlx and cal.mlx_weights else cal.weights[kind]
    experts = cal.mlx_weights if mlx and cal.mlx_weights else cal.experts[kind]
    kv = cal.kv_by_backend.get(backend, cal.kv)  # each backend's attention kernels
    return (
        (row["weights"] + row["state"]) / (weights * bandwidth)
        + row["experts"] / (experts * bandwidth)
        + row["kv"] / (kv * bandwidth)
    )


def decode_seconds(
    est: Estimate,
    machine: Machine,
    table: SpecTable,
    depth: int,
    sequences: int = 1,
    cal: Calibration | None = None,
    backend: Backend | None = None,
) -> float | None:
    """Seconds for one decode step of `sequences` sequences at `depth` (before runtime
    factors); None when a bandwidth that matters is unknown. `backend`: the GPUs' llama.cpp
    backend when not their vendor's default (Vulkan, SYCL)."""
    cal = cal or current()
    reads = reads_by_kind(est, depth, sequences)
    total = sum(sum(r.values()) for r in reads.values())
    if not total:
        return None
    mlx = est.runtime == MLX
    seconds: dict[int, float] = {}  # per pipeline stage, tensor-parallel ranks in parallel
    share: dict[Backend, float] = {}  # each backend's part of the bytes read
    for device, row in reads.items():
        if device is None:
            continue
        gpu = _gpu_of(machine, est, device)
        if gpu is None or not gpu.bandwidth_bytes_per_s:
            return None
        b = backend or backend_of(gpu)
        share[b] = share.get(b, 0.0) + sum(row.values()) / total
        stage = device // len(est.layout.devices) if est.layout.tensor_parallel else device
        t = byte_seconds(row, gpu.bandwidth_bytes_per_s, device_kind(gpu), cal, mlx, b)
        seconds[stage] = max(seconds.get(stage, 0.0), t)
    time = sum(seconds.values())
    ram = reads.get(None)
    if ram and sum(ram.values()) > NEGLIGIBLE * total:
        if not machine.ram_bandwidth_bytes_per_s:
            return None
        time += byte_seconds(ram, machine.ram_bandwidth_bytes_per_s, "cpu", cal, False, "cpu")
        share["cpu"] = share.get("cpu", 0.0) + sum(ram.values()) / total
    if mlx and cal.mlx_per_layer_s is not None:
        fixed = cal.mlx_per_layer_s
    else:  # a split model runs part of every layer, or whole layers, on each backend
        fixed = sum(cal.per_layer_s[b] * f for b, f in share.items())
    spec = spec_of(est, table)
    if spec.is_moe and not mlx:  # routing and the per-expert kernels of every MoE layer
        fixed += cal.moe_per_layer_s
    return time + fixed * spec.architecture.num_hidden_layers if time else None


def runtime_factor(est: Estimate, is_moe: bool, cal: Calibration | None = None) -> float:
    """The runtime's measured factor, times MTP drafting's published gain when it is on
    (memory.runtimes.mtp_speed_factor)."""
    cal = cal or current()
    mtp = mtp_speed_factor(est.runtime, is_moe) if est.mtp else 1.0
    own = (
        1.0
        if est.runtime == MLX and cal.mlx_per_layer_s is not None
        else (cal.runtime.get(est.runtime, 1.0))
    )
    return own * mtp


def decode_rate(
    est: Estimate, machine: Machine, table: SpecTable, depth: int, backend: Backend | None = None
) -> float | None:
    """Single-sequence decode tokens/s with `depth` tokens in the KV cache."""
    t = decode_seconds(est, machine, table, depth, backend=backend)
    if not t:
        return None
    return round(runtime_factor(est, spec_of(est, table).is_moe) / t, 1)


def estimate_speed(est: Estimate, machine: Machine, table: SpecTable) -> float | None:
    """Single-sequence decode tokens/s at a full context (the end of the longest
    conversation), or None when a bandwidth that matters is unknown."""
    return decode_rate(est, machine, table, est.context)


def prefill_flops(
    spec: ModelSpec, prompt_tokens: int, depth: int = 0
) -> tuple[float, float, float]:
    """(dense matmul, routed-expert matmul, attention) FLOPs per prompt token, on average over
    a `prompt_tokens` prompt after `depth` tokens already in the cache.

    matmul: 2 x the weights a token passes through (the routed top-k experts for MoE; neither
    the embedding lookup nor the output layer, which prefill runs for the last token only),
    plus the Gated DeltaNet state update (about 4 x heads x key dim x value dim per layer).
    attention: causal attention over the cached tokens and on average half the prompt in every
    full-attention layer, 4 x heads x head_dim per earlier token (QK^T and PV)."""
    a = spec.architecture
    weights = arch.text_active_params(a) - arch.embedding_params(a) - arch.lm_head_params(a)
    experts = 0
    if a.moe is not None:
        experts = (
            a.num_hidden_layers
            * 3
            * a.moe.num_experts_per_tok
            * (a.moe.moe_intermediate_size * a.hidden_size)
        )
    heads = max(a.linear_num_key_heads, a.linear_num_value_heads)
    delta = (
        a.n_linear_attention_layers * 4 * heads * (a.linear_key_head_dim * a.linear_value_head_dim)
    )
    attention = (
        a.n_full_attention_layers
        * 4
        * a.num_attention_heads
        * a.head_dim
        * (depth + prompt_tokens / 2)
    )
    return 2 * (weights - experts) + delta, 2 * experts, attention


def prefill_seconds_per_token(
    spec: ModelSpec,
    prompt: int,
    depth: int,
    flops: float,
    kind: DeviceKind,
    cal: Calibration | None = None,
) -> float:
    cal = cal or current()
    fit = cal.prefill.get(kind) or cal.prefill["gpu"]
    dense, experts, attention = prefill_flops(spec, prompt, depth)
    return (
        dense / (fit.dense * flops)
        + experts / (fit.moe * flops)
        + attention / (fit.attention * flops)
        + fit.per_layer_token_s * spec.architecture.num_hidden_layers
    )


def prefill_reason(est: Estimate, machine: Machine) -> str | None:
    """Why no prefill figure can be given for this placement, or None when one can."""
    weights = [p for p in est.parts if p.part == "weights"]
    on_gpu = sum(p.bytes for p in weights if p.device is not None)
    # all weights but the token embeddings (which llama.cpp keeps on the host) on GPUs
    in_ram = sum(
        p.bytes for p in weights if p.device is None and not p.detail.startswith("token embeddings")
    )
    if not on_gpu:
        return "prefill is estimated for GPUs only (no CPU prefill measurements fitted)"
    if in_ram > NEGLIGIBLE * (on_gpu + in_ram):
        return "prefill is not estimated with weights in host RAM (offload)"
    devices = {p.device for p in est.parts if p.device is not None}
    for d in devices:
        g = _gpu_of(machine, est, d)
        if g is None or not g.fp16_tensor_flops:
            name = g.name if g else f"GPU {d}"
            return f"no FP16 tensor throughput known for {name} (data/gpus.json)"
    return None


def prefill_rate(
    est: Estimate, machine: Machine, table: SpecTable, prompt: int, depth: int = 0
) -> float | None:
    """Prompt tokens/s for a `prompt`-token prompt after `depth` cached tokens, when the
    weights sit on GPUs whose FP16 throughput is known (no request overhead)."""
    if prefill_reason(est, machine):
        return None
    gpus = [_gpu_of(machine, est, d) for d in {p.device for p in est.parts if p.device is not None}]
    # tensor parallel shares the work across the ranks of a stage; a layer split runs the
    # stages one after another, so the rate is that of one GPU
    tp = est.layout.tensor_parallel or 1
    flops = min(g.fp16_tensor_flops or 0 for g in gpus if g is not None) * tp
    spec = spec_of(est, table)
    return 1 / prefill_seconds_per_token(spec, prompt, depth, flops, device_kind(gpus[0]))


@dataclass(frozen=True)
class Speed:
    """Decode and prefill estimates for one configuration (None: a figure that matters is
    unknown; `reason` says why in one line)."""

    decode: float | None
    decode_empty: float | None
    decode_half: float | None
    prefill: float | None
    prefill_prompt_tokens: int
    ttft_s: float | None
    ttft_prompt_tokens: int
    aggregate: float | None
    reason: str | None


def _decode_reason(est: Estimate, machine: Machine) -> str:
    if any(p.device is None and p.read_per_token_bytes for p in est.parts) and (
        not machine.ram_bandwidth_bytes_per_s
    ):
        return "RAM bandwidth unknown: run `qwenfit probe --measure` or give --ram-bandwidth"
    return "GPU memory bandwidth unknown: give --gpu with a catalog name"


def estimate_all(est: Estimate, machine: Machine, table: SpecTable) -> Speed:
    """Decode (one sequence) at an empty, a half and a full context, prefill at a 512-token
    prompt, TTFT for a prompt filling the context, and the aggregate decode rate of
    `est.parallel` sequences."""
    factor = runtime_factor(est, spec_of(est, table).is_moe)

    def rate(depth: int) -> float | None:
        t = decode_seconds(est, machine, table, depth)
        return round(factor / t, 1) if t else None

    full = rate(est.context)
    reason = None if full is not None else _decode_reason(est, machine)
    prompt = est.context
    pp = prefill_rate(est, machine, table, PREFILL_REFERENCE_TOKENS)
    pp_full = prefill_rate(est, machine, table, prompt)
    if pp is None and reason is None:
        reason = prefill_reason(est, machine)
    ttft = None
    if pp_full is not None:
        ttft = prompt / pp_full + (
            current().server_request_s if est.runtime in SERVER_RUNTIMES else 0.0
        )
    aggregate = None
    n = est.parallel
    if n > 1:
        step = decode_seconds(est, machine, table, est.context, n)
        if step:
            if pp is not None:  # a batched step is at least its FLOPs at the prefill rate
                step = max(step, n / pp)
            aggregate = round(factor * n / step, 1)
    return Speed(
        decode=full,
        decode_empty=rate(0) if full is not None else None,
        decode_half=rate(est.context // 2) if full is not None else None,
        prefill=None if pp is None else round(pp, 1),
        prefill_prompt_tokens=PREFILL_REFERENCE_TOKENS,
        ttft_s=None if ttft is None else round(ttft, 3),
        ttft_prompt_tokens=prompt,
        aggregate=aggregate,
        reason=reason,
    )


# vLLM docs, features/quantization/fp8 (https://docs.vllm.ai/en/latest/features/quantization/
# fp8.html): "FP8 computation is supported on NVIDIA GPUs with compute capability >= 8.9 (Ada
# Lovelace, Hopper, Blackwell). FP8 models will run on compute capability >= 7.5 (Turing) as
# weight-only W8A16, utilizing FP8 Marlin." (vLLM PR #5975.)
FP8_COMPUTE_CAPABILITY = (8, 9)


def fp8_weight_only(est: Estimate, machine: Machine) -> bool:
    """True when vLLM would run these FP8 weights as weight-only W8A16 (FP8 Marlin) because a GPU
    in use has no FP8 units: slower than the W8A8 path the speed model's FP8 figures assume,
    above all in prefill. Unknown compute capabilities count as capable."""
    if est.runtime != VLLM or est.quant != "fp8":
        return False
    for g in machine.gpus:
        if g.vendor != "nvidia" or not g.compute_capability:
            continue
        major, _, minor = g.compute_capability.partition(".")
        if (int(major), int(minor or 0)) < FP8_COMPUTE_CAPABILITY:
            return True
    return False
