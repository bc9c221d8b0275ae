"""`estimate()`: what a runtime will allocate for one Qwen3.5 configuration, part by part.

Pure arithmetic over the spec table (and, for defaults and placement, a Machine record); it does
no I/O and never probes. `max_context()` solves for the largest context that fits a budget.
"""

from __future__ import annotations

from typing import Literal

from qwenfit import memory_hf, memory_llamacpp, runtimes, speed
from qwenfit.errors import UnsupportedError, UsageError
from qwenfit.estimate_model import ContextSource, Estimate, Part, Placement
from qwenfit.hardware import Machine
from qwenfit.specs import ModelSpec, RuntimeName, SpecTable, load_specs

FlashAttn = Literal["auto", "on", "off"]


def _placement(runtime: RuntimeName, machine: Machine | None) -> Placement:
    """Everything goes to the GPU when there is one (full offload); otherwise host RAM."""
    return "ram" if machine is not None and not machine.has_gpu else "gpu"


def _resolve_flash_attn(runtime: RuntimeName, flash_attn: FlashAttn, kv_cache: str) -> bool | None:
    if runtime not in ("llama.cpp", "ollama"):
        return None
    # llama.cpp resolves "auto" to on for Qwen3.5 on CUDA and CPU (head_dim 256 is supported).
    on = flash_attn != "off"
    if not on and kv_cache in ("q8_0", "q4_0"):
        raise UnsupportedError(
            f"--kv-cache {kv_cache} needs flash attention in llama.cpp; use --flash-attn on or auto"
        )
    return on


def estimate(
    model: str | ModelSpec,
    *,
    runtime: str | None = None,
    quant: str | None = None,
    context: int | None = None,
    kv_cache: str | None = None,
    parallel: int = 1,
    ubatch: int | None = None,
    flash_attn: FlashAttn = "auto",
    text_only: bool = False,
    machine: Machine | None = None,
    table: SpecTable | None = None,
) -> Estimate:
    """Memory that `runtime` will allocate for `model` at `quant`, `context` tokens per sequence.

    Args:
        model: a name or alias from the spec table ('9b', 'Qwen/Qwen3.5-9B'), or a ModelSpec.
        runtime: 'llama.cpp', 'ollama', 'vllm' or 'transformers'; default: what `recommend`
            would use on `machine`.
        quant: a precision the runtime can load for this model; default: the runtime's usual one.
        context: tokens per sequence; default: the runtime's own default on this machine.
        kv_cache: KV cache type; default: the runtime's default (16-bit).
        parallel: sequences served at once (llama.cpp slots, vLLM max-num-seqs, batch size).
        ubatch: llama.cpp micro-batch in tokens (default 512).
        flash_attn: llama.cpp flash attention.
        text_only: leave the vision tower out.
        machine: decides placement (GPU or RAM) and machine-dependent defaults.
        table: the spec table (default: the shipped one).

    Raises:
        UsageError (and its subclasses): a bad value; the message says what is allowed.
    """
    table = table or load_specs()
    spec = model if isinstance(model, ModelSpec) else table.get(model)
    rt = runtimes.check_runtime(runtime) if runtime else runtimes.default_runtime(machine)
    if quant is None:
        quant = runtimes.default_quant(spec, rt)
        if quant is None:
            raise UnsupportedError(f"{rt} has no build of {spec.name}; try another --runtime")
    q = runtimes.check_quant(table, spec, rt, quant)
    kv = runtimes.check_kv_cache(table, rt, kv_cache)
    if parallel < 1:
        raise UsageError(f"invalid --parallel {parallel}: must be at least 1")
    if ubatch is not None and not 1 <= ubatch <= 65536:
        raise UsageError(f"invalid --ubatch {ubatch}: must be between 1 and 65536")
    fa = _resolve_flash_attn(rt, flash_attn, kv)
    placement = _placement(rt, machine)
    inputs = _Inputs(spec, rt, q, kv, parallel, ubatch, fa, text_only, placement)

    if context is None:
        ctx, source = _default_context(inputs, machine)
    else:
        ctx, source = context, "user"
    limit = spec.context.extended or spec.context.native
    if not 1 <= ctx <= limit:
        raise UsageError(
            f"invalid context {ctx} for {spec.name}: must be between 1 and {limit} tokens"
        )
    est = inputs.build(ctx, source)
    if machine is not None:
        est = est.model_copy(update={"tokens_per_second": _speed(est, spec, machine, table)})
    if ctx > spec.context.native:
        est.notes.append(
            f"{ctx} tokens is beyond the native {spec.context.native}: needs YaRN rope scaling "
            "as the model card describes"
        )
    return est


class _Inputs:
    """Resolved inputs of one estimate; `build(context)` is cheap so solvers can call it often."""

    def __init__(
        self,
        spec: ModelSpec,
        runtime: RuntimeName,
        quant: str,
        kv_cache: str,
        parallel: int,
        ubatch: int | None,
        flash_attn: bool | None,
        text_only: bool,
        placement: Placement,
    ) -> None:
        self.spec, self.runtime, self.quant, self.kv_cache = spec, runtime, quant, kv_cache
        self.parallel, self.flash_attn, self.text_only = parallel, flash_attn, text_only
        self.placement = placement
        gguf = runtime in ("llama.cpp", "ollama")
        self.ubatch = (ubatch or runtimes.LLAMACPP_DEFAULT_UBATCH) if gguf else None
        fmt = {"llama.cpp": "gguf", "ollama": "ollama"}.get(runtime, "safetensors")
        artifact = spec.artifact(quant, fmt)  # type: ignore[arg-type]
        assert artifact is not None  # check_quant guarantees it
        self.artifact = artifact

    def parts(self, context: int) -> list[Part]:
        if self.runtime in ("llama.cpp", "ollama"):
            assert self.ubatch is not None and self.flash_attn is not None
            return memory_llamacpp.parts(
                memory_llamacpp.LlamaCppRequest(
                    self.spec,
                    self.artifact,
                    context,
                    self.parallel,
                    self.kv_cache,
                    self.ubatch,
                    self.flash_attn,
                    self.text_only,
                    self.placement,
                )
            )
        req = memory_hf.HFRequest(
            self.spec,
            self.artifact,
            context,
            self.parallel,
            self.kv_cache,
            self.text_only,
            self.placement,
        )
        if self.runtime == "vllm":
            return memory_hf.vllm_parts(req)
        return memory_hf.transformers_parts(req)

    def build(self, context: int, source: ContextSource) -> Estimate:
        notes = []
        if self.runtime == "vllm":
            notes.append(
                f"vLLM claims {runtimes.VLLM_GPU_MEMORY_UTILIZATION:.0%} of the GPU at start "
                "(--gpu-memory-utilization) and fills what the parts below leave with KV blocks; "
                "the figures are what this context needs"
            )
        if self.runtime == "llama.cpp":
            per_seq = memory_llamacpp.recurrent_state_bytes(self.spec, 1)
            most = runtimes.LLAMACPP_MAX_CHECKPOINTS * per_seq * self.parallel
            notes.append(
                "llama-server also keeps context checkpoints of the recurrent state in host RAM "
                f"as long prompts are processed: up to {runtimes.LLAMACPP_MAX_CHECKPOINTS} per "
                f"slot, {most / 2**30:.2f} GiB at most (not charged here)"
            )
            if self.placement == "ram":
                notes.append(
                    "on the CPU llama.cpp repacks Q4_0/Q4_K/IQ4 tensors into a second buffer; "
                    "the mapped originals become reclaimable page cache and are not charged"
                )
        if self.runtime == "ollama":
            notes.append("Ollama runs its own GGUF build; sizes are llama.cpp's for the same quant")
        if self.placement == "ram":
            notes.append("no GPU: every part is placed in host RAM")
        return Estimate.from_parts(
            self.parts(context),
            model=self.spec.name,
            runtime=self.runtime,
            quant=self.quant,
            context=context,
            context_source=source,
            kv_cache=self.kv_cache,
            parallel=self.parallel,
            ubatch=self.ubatch,
            flash_attn=self.flash_attn,
            text_only=self.text_only,
            notes=notes,
        )


def _speed(est: Estimate, spec: ModelSpec, machine: Machine, table: SpecTable) -> float | None:
    from qwenfit.fit import best_gpu

    gpu = best_gpu(machine)
    bandwidth = (
        gpu.bandwidth_bytes_per_s if est.gpu_bytes and gpu else (machine.ram_bandwidth_bytes_per_s)
    )
    return speed.decode_tokens_per_s(est, spec, bandwidth, table)


def _default_context(inputs: _Inputs, machine: Machine | None) -> tuple[int, ContextSource]:
    native = inputs.spec.context.native
    if inputs.runtime == "ollama":
        return min(native, runtimes.ollama_default_context(machine)), "runtime default"
    if inputs.runtime == "transformers":
        return runtimes.TRANSFORMERS_DEFAULT_CONTEXT, "runtime default"
    if inputs.runtime == "llama.cpp" and machine is not None:
        # llama-server: n_ctx 0 = the trained context, then --fit lowers it to fit the devices,
        # leaving 1 GiB free per device and never going below 4096 tokens.
        budget = _budget(machine, inputs.placement, runtimes.LLAMACPP_FIT_TARGET_FREE)
        fitted = max_context_for(inputs, budget)
        if fitted is not None and fitted < native:
            return max(runtimes.LLAMACPP_FIT_MIN_CTX, fitted), "fitted to memory"
    return native, "runtime default"


def _budget(machine: Machine, placement: Placement, reserve: int) -> int:
    if placement == "gpu":
        return max(0, max(g.memory_free_bytes for g in machine.gpus) - reserve)
    return max(0, machine.ram_usable_bytes - reserve)


def _placed(est: Estimate, placement: Placement) -> int:
    return est.gpu_bytes if placement == "gpu" else est.ram_bytes


def max_context_for(inputs: _Inputs, budget: int) -> int | None:
    """Largest context whose bytes on `inputs.placement` stay within `budget`, or None.

    Above one ubatch every part is affine in the context (KV and, with flash attention off or in
    transformers, activations grow linearly; weights and state do not), so two evaluations give
    the line and the answer follows, less a step or two for cell padding. Below that (compute
    buffers shrink with tiny contexts) a bisection finishes the job.
    """
    limit = inputs.spec.context.native

    def fits(ctx: int) -> bool:
        return _placed(inputs.build(ctx, "user"), inputs.placement) <= budget

    lo, hi = 1024, 2048
    a = _placed(inputs.build(lo, "user"), inputs.placement)
    b = _placed(inputs.build(hi, "user"), inputs.placement)
    slope = max(1e-9, (b - a) / (hi - lo))
    ctx = min(limit, int(lo + (budget - a) / slope))
    if ctx >= lo:
        while ctx >= lo:
            if fits(ctx):
                return ctx
            ctx -= 256
    if not fits(1):
        return None
    good, bad = 1, lo + 1
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good


def max_context(
    model: str | ModelSpec,
    budget_bytes: int,
    *,
    runtime: str | None = None,
    quant: str | None = None,
    kv_cache: str | None = None,
    parallel: int = 1,
    ubatch: int | None = None,
    flash_attn: FlashAttn = "auto",
    text_only: bool = False,
    machine: Machine | None = None,
    table: SpecTable | None = None,
) -> int | None:
    """The largest context (tokens per sequence, up to the native 262,144) whose placed bytes fit
    `budget_bytes`, or None when not even one token fits."""
    base = estimate(
        model,
        runtime=runtime,
        quant=quant,
        context=1024,
        kv_cache=kv_cache,
        parallel=parallel,
        ubatch=ubatch,
        flash_attn=flash_attn,
        text_only=text_only,
        machine=machine,
        table=table,
    )
    table = table or load_specs()
    spec = model if isinstance(model, ModelSpec) else table.get(model)
    fa = None if base.flash_attn is None else ("on" if base.flash_attn else "off")
    inputs = _Inputs(
        spec,
        base.runtime,
        base.quant,
        base.kv_cache,
        parallel,
        ubatch,
        None if fa is None else fa == "on",
        text_only,
        _placement(base.runtime, machine),
    )
    return max_context_for(inputs, budget_bytes)
