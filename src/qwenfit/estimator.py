"""`estimate()`: what a runtime will allocate for one Qwen3.5 configuration, part by part.

Pure arithmetic over the spec table and, for defaults and placement, a Machine record; it does
no I/O and never probes. On a machine, the model is laid out the way the runtime itself would
(`layout.py`: one GPU, several, experts or layers in RAM). `max_context()` solves for the largest
context that fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from qwenfit import layout as layouts
from qwenfit import memory_hf, memory_llamacpp, runtimes, speed
from qwenfit.errors import UnsupportedError, UsageError
from qwenfit.estimate_model import ContextSource, Estimate, Layout, Part
from qwenfit.hardware import Machine
from qwenfit.specs import Artifact, ModelSpec, RuntimeName, SpecTable, load_specs

FlashAttn = Literal["auto", "on", "off"]


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


@dataclass(frozen=True)
class Config:
    """Resolved inputs of one estimate; `build(context)` is cheap so solvers can call it often."""

    spec: ModelSpec
    runtime: RuntimeName
    quant: str
    kv_cache: str
    parallel: int
    ubatch: int | None
    flash_attn: bool | None
    text_only: bool
    artifact: Artifact
    layout: Layout

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
                    self.layout,
                )
            )
        req = memory_hf.HFRequest(
            self.spec,
            self.artifact,
            context,
            self.parallel,
            self.kv_cache,
            self.text_only,
            self.layout,
        )
        if self.runtime == "vllm":
            return memory_hf.vllm_parts(req)
        return memory_hf.transformers_parts(req)

    def build(self, context: int, source: ContextSource = "user") -> Estimate:
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
            layout=self.layout,
            notes=self.notes(),
        )

    def notes(self) -> list[str]:
        notes = []
        kind = self.layout.kind
        if self.runtime == "vllm":
            notes.append(
                f"vLLM claims {runtimes.VLLM_GPU_MEMORY_UTILIZATION:.0%} of each GPU at start "
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
        if self.runtime in ("llama.cpp", "ollama") and kind in ("cpu", "offload"):
            notes.append(
                "on the CPU llama.cpp repacks Q4_0/Q4_K/IQ4 tensors into a second buffer; the "
                "mapped originals become reclaimable page cache and are not charged"
            )
        if self.runtime == "ollama":
            notes.append("Ollama runs its own GGUF build; sizes are llama.cpp's for the same quant")
        if kind == "offload":
            notes.append(
                "does not fit the GPU whole: part of the weights run from RAM, which is much slower"
            )
        if kind == "cpu":
            notes.append("every part is placed in host RAM")
        return notes

    def with_layout(self, layout: Layout) -> Config:
        return replace(self, layout=layout)


def configure(
    model: str | ModelSpec,
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
) -> Config:
    """Check and resolve everything but the context and the layout."""
    table = table or load_specs()
    spec = model if isinstance(model, ModelSpec) else table.get(model)
    rt = (
        runtimes.check_runtime(runtime)
        if runtime
        else runtimes.runtime_for(spec, runtimes.default_runtime(machine))
    )
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
    gguf = rt in ("llama.cpp", "ollama")
    artifact = spec.artifact(q, runtimes.ARTIFACT_FORMAT[rt])
    assert artifact is not None  # check_quant guarantees it
    start = (
        Layout(kind="cpu")
        if machine is not None and not machine.gpus
        else Layout(kind="gpu", devices=[0])
    )
    return Config(
        spec,
        rt,
        q,
        kv,
        parallel,
        (ubatch or runtimes.LLAMACPP_DEFAULT_UBATCH) if gguf else None,
        fa,
        text_only,
        artifact,
        start,
    )


def plan(
    cfg: Config,
    context: int,
    machine: Machine | None,
    margin: int,
    *,
    allow_offload: bool = True,
    nodes: int = 1,
) -> Config:
    """`cfg` laid out on `machine` the way its runtime would do it at `context` tokens."""

    def measure(layout: Layout) -> Estimate:
        return cfg.with_layout(layout).build(context)

    if cfg.runtime in ("llama.cpp", "ollama"):
        # llama-server --fit moves MoE experts to RAM first; Ollama's scheduler only splits layers.
        layout = layouts.plan_llamacpp(
            measure,
            cfg.spec,
            machine,
            margin,
            allow_offload=allow_offload,
            expert_offload=cfg.runtime == "llama.cpp",
        )
    elif cfg.runtime == "vllm":
        layout = layouts.plan_vllm(measure, cfg.spec, cfg.quant, machine, margin, nodes)
    else:
        layout = layouts.plan_transformers(measure, machine, margin)
    return cfg.with_layout(layout)


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
    allow_offload: bool = True,
    nodes: int = 1,
    margin: int = runtimes.LLAMACPP_FIT_TARGET_FREE,
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
        machine: lays the model out on its devices and sets machine-dependent defaults; None
            means one GPU of unknown size.
        allow_offload: let llama.cpp / Ollama put experts or layers in RAM when the GPUs are too
            small (what llama-server --fit and Ollama's scheduler do).
        nodes: machines like `machine` for vLLM (tensor parallel within, pipeline across).
        margin: memory kept free on each device when choosing the layout.
        table: the spec table (default: the shipped one).

    Raises:
        UsageError (and its subclasses): a bad value; the message says what is allowed.
    """
    if nodes < 1:
        raise UsageError(f"invalid --nodes {nodes}: must be at least 1")
    if nodes > 1 and runtime not in ("vllm", None):
        raise UnsupportedError(f"--nodes {nodes} needs --runtime vllm (with Ray)")
    cfg = configure(
        model,
        runtime=runtime,
        quant=quant,
        kv_cache=kv_cache,
        parallel=parallel,
        ubatch=ubatch,
        flash_attn=flash_attn,
        text_only=text_only,
        machine=machine,
        table=table,
    )
    spec = cfg.spec
    if context is None:
        ctx, source = _default_context(cfg, machine, margin)
    else:
        ctx, source = context, "user"
    limit = spec.context.extended or spec.context.native
    if not 1 <= ctx <= limit:
        raise UsageError(
            f"invalid context {ctx} for {spec.name}: must be between 1 and {limit} tokens"
        )
    cfg = plan(cfg, ctx, machine, margin, allow_offload=allow_offload, nodes=nodes)
    est = cfg.build(ctx, source)
    if machine is not None:
        est = est.model_copy(
            update={"tokens_per_second": speed.estimate_speed(est, machine, table or load_specs())}
        )
    if ctx > spec.context.native:
        est.notes.append(
            f"{ctx} tokens is beyond the native {spec.context.native}: needs YaRN rope scaling "
            "as the model card describes"
        )
    return est


def _default_context(
    cfg: Config, machine: Machine | None, margin: int
) -> tuple[int, ContextSource]:
    native = cfg.spec.context.native
    if cfg.runtime == "ollama":
        return min(native, runtimes.ollama_default_context(machine)), "runtime default"
    if cfg.runtime == "transformers":
        return runtimes.TRANSFORMERS_DEFAULT_CONTEXT, "runtime default"
    if cfg.runtime == "llama.cpp" and machine is not None:
        # llama-server: n_ctx 0 = the trained context, then --fit lowers it to fit the devices,
        # leaving 1 GiB free per device and never going below 4096 tokens (then offloads).
        fitted = max_context_on(
            plan(cfg, runtimes.LLAMACPP_FIT_MIN_CTX, machine, margin, allow_offload=False),
            machine,
            margin,
        )
        if fitted is None or fitted < native:
            return max(runtimes.LLAMACPP_FIT_MIN_CTX, fitted or 0), "fitted to memory"
    return native, "runtime default"


def max_context_on(cfg: Config, machine: Machine, margin: int) -> int | None:
    """Largest context (up to the native one) at which `cfg`'s layout fits every device of
    `machine` and its RAM, or None when not even one token fits."""

    def over(ctx: int) -> list[int]:
        return layouts.shortfall_by_pool(cfg.build(ctx), machine, margin)

    return _largest(cfg.spec.context.native, over)


def _largest(limit: int, over: Callable[[int], list[int]]) -> int | None:
    """Largest context in [1, limit] where every pool's excess `over(ctx)` is <= 0.

    Every pool's bytes are close to affine in the context (KV and, with flash attention off or
    in transformers, activations grow linearly; weights and state do not), so two evaluations
    give each pool's line and the smallest root is a close first guess. Cell padding, vLLM's
    blocks and compute buffers that shrink below one ubatch make the function a staircase, so a
    bisection on the side of the guess that holds the answer finishes the job exactly.
    """

    def fits(ctx: int) -> bool:
        return max(over(ctx)) <= 0

    lo, hi = 1024, 2048
    roots: list[float] = [float(limit)]
    for a, b in zip(over(lo), over(hi), strict=True):
        slope = (b - a) / (hi - lo)
        if slope > 0:
            roots.append(lo - a / slope)
        elif a > 0:
            roots.append(0.0)  # this pool is over budget at any context above one ubatch
    guess = max(1, min(limit, int(min(roots))))
    if fits(guess):
        if guess == limit or not fits(guess + 1):
            return guess
        good, bad = guess, limit + 1
        if fits(limit):
            return limit
    else:
        if not fits(1):
            return None
        good, bad = 1, guess
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good


def max_context(
    model: str | ModelSpec,
    budget_bytes: int | None = None,
    *,
    runtime: str | None = None,
    quant: str | None = None,
    kv_cache: str | None = None,
    parallel: int = 1,
    ubatch: int | None = None,
    flash_attn: FlashAttn = "auto",
    text_only: bool = False,
    machine: Machine | None = None,
    allow_offload: bool = True,
    margin: int = runtimes.LLAMACPP_FIT_TARGET_FREE,
    table: SpecTable | None = None,
) -> int | None:
    """The largest context (tokens per sequence, up to the native 262,144) that fits, or None.

    With `budget_bytes`: the bytes on the GPU (or in RAM, without one) stay within it. Otherwise
    `machine` is required: the model is laid out as `estimate` would at 4096 tokens and every
    device and the RAM must keep `margin` free.
    """
    cfg = configure(
        model,
        runtime=runtime,
        quant=quant,
        kv_cache=kv_cache,
        parallel=parallel,
        ubatch=ubatch,
        flash_attn=flash_attn,
        text_only=text_only,
        machine=machine,
        table=table,
    )
    if budget_bytes is not None:
        budget = budget_bytes

        def over(ctx: int) -> list[int]:
            est = cfg.build(ctx)
            return [(est.gpu_bytes if est.gpu_bytes else est.ram_bytes) - budget]

        return _largest(cfg.spec.context.native, over)
    if machine is None:
        raise UsageError("max_context needs a budget or a machine")
    cfg = plan(cfg, runtimes.LLAMACPP_FIT_MIN_CTX, machine, margin, allow_offload=allow_offload)
    return max_context_on(cfg, machine, margin)


def max_context_of(
    est: Estimate, machine: Machine, margin: int, table: SpecTable | None = None
) -> int | None:
    """The largest context at which `est`'s configuration, on its layout, still fits."""
    fa: FlashAttn = "auto" if est.flash_attn is None or est.flash_attn else "off"
    cfg = configure(
        est.model,
        runtime=est.runtime,
        quant=est.quant,
        kv_cache=est.kv_cache,
        parallel=est.parallel,
        ubatch=est.ubatch,
        flash_attn=fa,
        text_only=est.text_only,
        machine=machine,
        table=table,
    )
    return max_context_on(cfg.with_layout(est.layout), machine, margin)
