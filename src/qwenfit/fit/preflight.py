"""`check()`: does one configuration fit this machine, and if not, what is the nearest that does.

A library call that returns a result and never exits; `qwenfit check` turns it into exit 0 / 3.
By default the whole model must sit on the GPU(s); `allow_offload` also accepts llama.cpp's
expert or layer offload to RAM, which runs but is much slower.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.errors import UsageError
from qwenfit.fit.disk import DiskFit, check_disk, model_folder
from qwenfit.fit.verdict import Fit, check_fit
from qwenfit.hardware.machine import Machine
from qwenfit.memory import runtimes
from qwenfit.memory.context import max_context_of
from qwenfit.memory.estimator import estimate_with
from qwenfit.memory.options import DEFAULT_MARGIN, FlashAttn, Options
from qwenfit.memory.record import Estimate
from qwenfit.specs.table import ModelSpec, SpecTable, load_specs

# Shorter contexts are not offered as a way to fit: a thinking model's answer alone can take
# thousands of tokens, and llama-server --fit never goes below 4096 either.
MIN_USEFUL_CONTEXT = runtimes.LLAMACPP_FIT_MIN_CTX


class Alternative(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    change: Literal["context", "quant", "model"]
    model: str
    quant: str
    context: int
    total_bytes: int


class CheckResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    fits: bool
    estimate: Estimate
    fit: Fit
    nearest: Alternative | None = None
    disk: DiskFit | None = Field(
        None, description="The download against the disk, when checked; fits needs both."
    )


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
    mtp: bool = False,
    llama_cpp_build: int | None = None,
    allow_offload: bool = False,
    nodes: int = 1,
    margin: int = DEFAULT_MARGIN,
    table: SpecTable | None = None,
    disk: str | None = None,
    check_download: bool = False,
    download_speed: int | None = None,
) -> CheckResult:
    """Estimate `model` as configured, lay it out on `machine`, and look for the nearest fit.

    With `check_download` (or a `disk`: a folder, or a free size such as '200GB') the download
    is also checked against the free space of the runtime's model folder (`fit.disk`);
    `download_speed` (bytes/s) adds how long it takes.
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
        llama_cpp_build=llama_cpp_build,
        allow_offload=allow_offload,
        nodes=nodes,
        margin=margin,
    )
    result = check_with(model, machine, options, table)
    if check_download or disk is not None:
        result = with_disk(result, disk, download_speed)
    return result


def with_disk(result: CheckResult, disk: str | None, download_speed: int | None) -> CheckResult:
    """`result` with the download checked against the disk (and `fits` requiring both)."""
    est = result.estimate
    if est.download_bytes is None:
        return result
    if disk is None and model_folder(est.runtime) is None:
        return result  # no home folder: where the runtime downloads is unknown; not checked
    d = check_disk(
        est.download_bytes,
        bool(est.download_exact),
        est.runtime,
        disk=disk,
        download_speed=download_speed,
    )
    return result.model_copy(update={"disk": d, "fits": result.fits and d.fits})


def check_with(
    model: str | ModelSpec, machine: Machine, options: Options, table: SpecTable | None = None
) -> CheckResult:
    """`check` for an `Options` record already built."""
    if not isinstance(machine, Machine):
        raise UsageError(f"invalid machine {machine!r}: must be a Machine (see probe())")
    table = table or load_specs()
    margin = options.margin

    def at(m: str | ModelSpec, q: str | None, ctx: int | None) -> Estimate:
        update = {"quant": q, "context": ctx}
        return estimate_with(m, options.model_copy(update=update), machine, table)

    est = at(model, options.quant, options.context)
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
    spec = est.spec or table.get(est.model)
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
