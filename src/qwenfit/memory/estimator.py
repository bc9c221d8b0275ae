"""`estimate()`: what a runtime will allocate for one Qwen3.5 configuration, part by part.

Pure arithmetic over the spec table and, for defaults and placement, a Machine record; it does
no I/O and never probes. On a machine, the model is laid out the way the runtime itself would
(`layout`: one GPU, several, experts or layers in RAM), and the decode speed that layout gives
is added (`speed`).
"""

from __future__ import annotations

from qwenfit.adapters import VLLM
from qwenfit.bounds import check_cost
from qwenfit.errors import UnsupportedError, UsageError
from qwenfit.hardware.machine import Machine
from qwenfit.memory import runtimes, speed
from qwenfit.memory.config import Config, configure, plan, with_host_ram
from qwenfit.memory.context import default_context
from qwenfit.memory.options import FlashAttn, Options
from qwenfit.memory.record import ContextSource, Estimate
from qwenfit.specs.table import ModelSpec, SpecTable, load_specs


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
    mtp: bool = False,
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
        mtp: MTP speculative decoding (llama-server --spec-type draft-mtp, vLLM
            --speculative-config method mtp): charges the MTP layer, its KV and buffers, and
            applies the published decode-speed factor.
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
    options = Options.of(
        runtime=runtime,
        quant=quant,
        context=context,
        kv_cache=kv_cache,
        parallel=parallel,
        ubatch=ubatch,
        flash_attn=flash_attn,
        text_only=text_only,
        mtp=mtp,
        allow_offload=allow_offload,
        nodes=nodes,
        margin=margin,
    )
    return estimate_with(model, options, machine, table)


def estimate_with(
    model: str | ModelSpec,
    options: Options,
    machine: Machine | None = None,
    table: SpecTable | None = None,
) -> Estimate:
    """`estimate` for an `Options` record already built (the stages above pass one down)."""
    if machine is not None and not isinstance(machine, Machine):
        raise UsageError(f"invalid machine {machine!r}: must be a Machine (see probe())")
    check_cost(len(machine.gpus) if machine is not None else 1, options.nodes)
    table = table or load_specs()
    return finish(configure(model, options, machine, table), options, machine, table)[1]


def finish(
    cfg: Config,
    options: Options,
    machine: Machine | None,
    table: SpecTable,
    context: int | None = None,
    *,
    speed: bool = True,
) -> tuple[Config, Estimate]:
    """The one path from a resolved configuration to its estimate: context -> layout ->
    host-RAM caches -> parts -> speed. `estimate`, `check`, `max_context`, `sweep`, the
    recommender's candidates and `launch` all end here, so they agree by construction.

    `context` overrides `options.context` (the recommender tries several); None in both means
    the runtime's own default on this machine. Returns the placed configuration (for the
    context solvers) and its estimate. `speed=False` stops before the speed (the recommender
    adds it with `with_speed` to the candidates that fit: the same record, sooner).
    """
    if options.nodes > 1 and not cfg.adapter.multi_node:
        chosen = "" if options.runtime else " (the default on this machine)"
        raise UnsupportedError(
            f"--nodes {options.nodes} runs vLLM across machines (Ray), but the runtime is "
            f"{cfg.runtime}{chosen}; pass --runtime {VLLM} or --nodes 1"
        )
    spec = cfg.spec
    ctx = context if context is not None else options.context
    source: ContextSource = "user"
    if ctx is None:
        ctx, source = default_context(cfg, machine, options.margin)
    limit = spec.context.extended or spec.context.native
    if not 1 <= ctx <= limit:
        raise UsageError(
            f"invalid context {ctx} for {spec.name}: must be between 1 and {limit} tokens"
        )
    cfg = plan(
        cfg, ctx, machine, options.margin, allow_offload=options.allow_offload, nodes=options.nodes
    )
    cfg = with_host_ram(cfg, machine, options.margin, ctx)
    est = cfg.build(ctx, source)  # shared with the solvers' memo: never mutated below
    return cfg, with_speed(est, spec, machine, table) if speed else est


def with_speed(
    est: Estimate, spec: ModelSpec, machine: Machine | None, table: SpecTable
) -> Estimate:
    """`est` with the speed its layout gives on `machine`, and the notes that go with it."""
    update: dict[str, object] = {}
    notes = list(est.notes)
    if machine is not None:
        s = speed.estimate_all(est, machine, table)
        update.update(
            tokens_per_second=s.decode,
            decode_empty_tokens_per_second=s.decode_empty,
            decode_half_tokens_per_second=s.decode_half,
            decode_full_tokens_per_second=s.decode,
            speed_reason=s.reason,
            prefill_tokens_per_second=s.prefill,
            prefill_prompt_tokens=s.prefill_prompt_tokens if s.prefill is not None else None,
            time_to_first_token_s=s.ttft_s,
            ttft_prompt_tokens=s.ttft_prompt_tokens if s.ttft_s is not None else None,
            aggregate_tokens_per_second=s.aggregate,
        )
        if s.decode is not None and est.mtp:  # the gain is in speed.estimate_speed
            factor = runtimes.mtp_speed_factor(est.runtime, spec.is_moe)
            notes.append(
                f"MTP: decode speed x {factor:g} (published runs; acceptance 0.5-0.9 falls "
                "with context, see docs/estimation.md)"
            )
    if est.context > spec.context.native:
        notes.append(
            f"{est.context} tokens is beyond the native {spec.context.native}: needs YaRN rope "
            "scaling as the model card describes"
        )
    if notes != est.notes:
        update["notes"] = notes
    return est.model_copy(update=update) if update else est
