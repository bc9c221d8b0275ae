"""`sweep()`: memory and decode speed over a grid of contexts x KV cache types, and on a machine
the largest context that fits for each KV type (`qwenfit estimate MODEL --sweep`, `--plot`).

Each row is an ordinary estimate (`estimate_with`), so the table and a single `estimate` agree.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.adapters import RuntimeName
from qwenfit.errors import UsageError
from qwenfit.hardware.machine import Machine
from qwenfit.memory import layout as layouts
from qwenfit.memory import runtimes
from qwenfit.memory.config import configure
from qwenfit.memory.context import max_context_of
from qwenfit.memory.estimator import estimate_with
from qwenfit.memory.options import DEFAULT_MARGIN, Options
from qwenfit.specs.table import ModelSpec, SpecTable, load_specs

# The sweep starts where a thinking model's answer fits (llama-server --fit's floor, too).
SWEEP_START = runtimes.LLAMACPP_FIT_MIN_CTX
MAX_SWEEP_POINTS = 64


class SweepRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    context: int = Field(gt=0)
    kv_cache: str
    total_bytes: int = Field(ge=0)
    gpu_bytes: int = Field(ge=0)
    ram_bytes: int = Field(ge=0)
    kv_cache_bytes: int = Field(ge=0)
    device_bytes: dict[int, int] = Field(description="Bytes on each GPU (by index).")
    tokens_per_second: float | None = Field(None, description="Decode speed, one sequence.")
    fits: bool | None = Field(None, description="On the machine; null without one.")
    missing_bytes: int | None = Field(None, ge=0, description="Shortfall; null without machine.")
    yarn: bool = Field(description="Beyond the native context: needs YaRN rope scaling.")


class SweepResult(BaseModel):
    """Memory (and speed) of one model at each context and KV cache type."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    model: str
    runtime: RuntimeName
    quant: str
    parallel: int
    text_only: bool
    contexts: list[int]
    kv_types: list[str]
    rows: list[SweepRow]
    budget_bytes: int | None = Field(
        None,
        description="What the machine can give the pool the model lands in (GPU budgets summed "
        "over the GPUs used, or RAM), after the margin and any reserve; null without a machine.",
    )
    margin_bytes: int
    max_context: dict[str, int | None] = Field(
        default_factory=dict,
        description="Per KV type, the largest context (up to the native one) that fits the "
        "machine on the layout of the first context; null: none fits. Empty without a machine.",
    )


def default_contexts(spec: ModelSpec, yarn: bool = False) -> list[int]:
    """Powers of two from 4096 to the native context, then (with `yarn`) to the extended one."""
    top = (spec.context.extended or spec.context.native) if yarn else spec.context.native
    out = []
    c = SWEEP_START
    while c < top:
        out.append(c)
        c *= 2
    return [*out, top]


def sweep(
    model: str | ModelSpec,
    *,
    contexts: list[int] | None = None,
    kv_types: list[str] | None = None,
    machine: Machine | None = None,
    runtime: str | None = None,
    quant: str | None = None,
    parallel: int = 1,
    text_only: bool = False,
    yarn: bool = False,
    allow_offload: bool = False,
    margin: int = DEFAULT_MARGIN,
    table: SpecTable | None = None,
) -> SweepResult:
    """Estimate `model` at every context in `contexts` with every KV type in `kv_types`.

    Args:
        contexts: tokens per sequence; default: 4096, 8192, ... up to the native context
            (with `yarn`, up to the YaRN-extended one).
        kv_types: default: every KV cache type the runtime offers.
        machine: lays each row out and checks it fits; adds the largest fitting context.
        allow_offload: let llama.cpp / Ollama rows spill to RAM (default: GPU only).
        Other arguments as for `estimate`.
    """
    table = table or load_specs()
    base = Options.of(
        runtime=runtime,
        quant=quant,
        parallel=parallel,
        text_only=text_only,
        allow_offload=allow_offload,
        margin=margin,
    )
    cfg = configure(model, base, machine, table)
    spec = cfg.spec
    options = base.model_copy(update={"runtime": cfg.runtime, "quant": cfg.quant})
    ctxs = sorted(set(contexts or default_contexts(spec, yarn)))
    limit = spec.context.extended or spec.context.native
    if not ctxs or len(ctxs) > MAX_SWEEP_POINTS:
        raise UsageError(f"invalid contexts: give 1 to {MAX_SWEEP_POINTS} context lengths")
    if ctxs[0] < 1 or ctxs[-1] > limit:
        raise UsageError(
            f"invalid context {ctxs[-1] if ctxs[-1] > limit else ctxs[0]} for {spec.name}: "
            f"must be between 1 and {limit} tokens"
        )
    kvs = list(dict.fromkeys(kv_types or table.runtimes[cfg.runtime].kv_cache_types))
    for k in kvs:
        runtimes.check_kv_cache(table, cfg.runtime, k)
    rows: list[SweepRow] = []
    best: dict[str, int | None] = {}
    budget: int | None = None
    for kv in kvs:
        for i, ctx in enumerate(ctxs):
            est = estimate_with(
                spec, options.model_copy(update={"kv_cache": kv, "context": ctx}), machine, table
            )
            fits = missing = None
            if machine is not None:
                gpu_short, ram_short = layouts.shortfall(est, machine, margin)
                missing = gpu_short + ram_short
                fits = missing == 0 and not (est.gpu_bytes and not machine.gpus)
                if i == 0:
                    pools = layouts.pools(est, machine, margin)
                    gpu_pools = [b for d, _, b in pools if d is not None]
                    budget = sum(gpu_pools) if gpu_pools else pools[-1][2]
                    best[kv] = max_context_of(est, machine, margin, table)
            rows.append(
                SweepRow(
                    context=ctx,
                    kv_cache=kv,
                    total_bytes=est.total_bytes,
                    gpu_bytes=est.gpu_bytes,
                    ram_bytes=est.ram_bytes,
                    kv_cache_bytes=est.kv_cache_bytes,
                    device_bytes=est.device_bytes,
                    tokens_per_second=est.tokens_per_second,
                    fits=fits,
                    missing_bytes=missing,
                    yarn=ctx > spec.context.native,
                )
            )
    return SweepResult(
        model=spec.name,
        runtime=cfg.runtime,
        quant=cfg.quant,
        parallel=parallel,
        text_only=text_only,
        contexts=ctxs,
        kv_types=kvs,
        rows=rows,
        budget_bytes=budget,
        margin_bytes=margin,
        max_context=best,
    )
