"""`check()`: does one configuration fit this machine, and if not, what is the nearest that does.

A library call that returns a result and never exits; `qwenfit check` turns it into exit 0 / 3.
By default the whole model must sit on the GPU(s); `allow_offload` also accepts llama.cpp's
expert or layer offload to RAM, which runs but is much slower.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from qwenfit import runtimes
from qwenfit.estimate_model import Estimate
from qwenfit.estimator import FlashAttn, estimate, max_context_of
from qwenfit.fit import DEFAULT_MARGIN, Fit, check_fit
from qwenfit.hardware import Machine
from qwenfit.recommender import MIN_USEFUL_CONTEXT
from qwenfit.specs import ModelSpec, SpecTable, load_specs


class Alternative(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    change: Literal["context", "quant", "model"]
    model: str
    quant: str
    context: int
    total_bytes: int


class CheckResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    fits: bool
    estimate: Estimate
    fit: Fit
    nearest: Alternative | None = None


def check(
    model: str | ModelSpec,
    machine: Machine,
    *,
    runtime: str | None = None,
    quant: str | None = None,
    context: int | None = None,
    kv_cache: str | None = None,
    parallel: int = 1,
    ubatch: int | None = None,
    flash_attn: FlashAttn = "auto",
    text_only: bool = False,
    allow_offload: bool = False,
    nodes: int = 1,
    margin: int = DEFAULT_MARGIN,
    table: SpecTable | None = None,
) -> CheckResult:
    """Estimate `model` as configured, lay it out on `machine`, and look for the nearest fit."""
    table = table or load_specs()

    def at(m: str | ModelSpec, q: str | None, ctx: int | None) -> Estimate:
        return estimate(
            m,
            runtime=runtime,
            quant=q,
            context=ctx,
            kv_cache=kv_cache,
            parallel=parallel,
            ubatch=ubatch,
            flash_attn=flash_attn,
            text_only=text_only,
            machine=machine,
            allow_offload=allow_offload,
            nodes=nodes,
            margin=margin,
            table=table,
        )

    est = at(model, quant, context)
    fit = check_fit(est, machine, margin)
    if fit.fits:
        return CheckResult(fits=True, estimate=est, fit=fit)

    def nearest(change: Literal["context", "quant", "model"], alt: Estimate) -> CheckResult:
        return CheckResult(
            fits=False,
            estimate=est,
            fit=fit,
            nearest=Alternative(
                change=change,
                model=alt.model,
                quant=alt.quant,
                context=alt.context,
                total_bytes=alt.total_bytes,
            ),
        )

    # 1. the same model and precision at a shorter context
    ctx = max_context_of(est, machine, margin, table)
    if ctx is not None and ctx >= MIN_USEFUL_CONTEXT:
        alt = at(est.model, est.quant, ctx)
        if check_fit(alt, machine, margin).fits:
            return nearest("context", alt)
    # 2. a lossier precision of the same model, then 3. a smaller model, at the same context
    spec = table.get(est.model)
    loss = table.precisions[est.quant].quality_loss
    smaller = sorted(
        (m for m in table.models if m.params.text < spec.params.text),
        key=lambda m: m.params.text,
        reverse=True,
    )
    for m in [spec, *smaller]:
        quants = sorted(
            runtimes.loadable_precisions(table, m, est.runtime),
            key=lambda q: table.precisions[q].quality_loss,
        )
        for q in quants:
            if m is spec and table.precisions[q].quality_loss <= loss:
                continue
            alt = at(m, q, est.context)
            if check_fit(alt, machine, margin).fits:
                return nearest("quant" if m is spec else "model", alt)
    return CheckResult(fits=False, estimate=est, fit=fit)
