"""`recommend()`: the best Qwen3.5 size, precision and context for a machine, with alternatives.

Policy, in order: expected quality (the model card's scores for the task, reduced by the
measured loss of the precision), then estimated decode speed, then memory headroom, then name.
Candidates must fit by `fit.check_fit` at the target context; only when none does (and the user
did not pin the context) are contexts lowered, never below 4096 tokens.
"""

from __future__ import annotations

import statistics
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qwenfit import runtimes, speed
from qwenfit.errors import UsageError
from qwenfit.estimate_model import Estimate
from qwenfit.estimator import FlashAttn, estimate, max_context
from qwenfit.fit import DEFAULT_MARGIN, Fit, check_fit, placement_budget
from qwenfit.hardware import Machine
from qwenfit.launch import LaunchCommand, launch_command
from qwenfit.specs import ModelSpec, RuntimeName, SpecTable, load_specs

Task = Literal["chat", "agent", "code", "vision"]
TASK_BENCHMARKS: dict[str, tuple[str, ...]] = {
    "chat": (
        "MMLU-Pro",
        "MMLU-Redux",
        "C-Eval",
        "SuperGPQA",
        "GPQA",
        "IFEval",
        "MMMLU",
        "LongBench v2",
    ),
    "agent": ("BFCL-V4", "TAU2-Bench", "IFEval"),
    "code": ("LiveCodeBench v6",),
    "vision": ("MMMU", "MMStar"),
}
DEFAULT_CONTEXT = 32768
MIN_USEFUL_CONTEXT = 4096


class Recommendation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(ge=1)
    model: str
    display_name: str
    runtime: str
    quant: str
    context: int
    max_context: int | None = Field(description="Largest context that fits with this pick.")
    quality_score: float = Field(description="Task score after the precision's quality loss.")
    decode_tokens_per_s: float | None
    estimate: Estimate
    fit: Fit
    launch: LaunchCommand
    reasons: list[str]


class RecommendResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    machine: Machine
    runtime: str
    task: Task
    context: int
    context_source: Literal["user", "default"]
    recommendations: list[Recommendation]
    notes: list[str] = []


def task_score(spec: ModelSpec, task: Task) -> tuple[bool, float]:
    """(has scores for this task, mean score); models without them fall back to 'chat'."""
    scores = spec.quality.scores if spec.quality else {}
    own = [scores[b] for b in TASK_BENCHMARKS[task] if b in scores]
    if own:
        return True, statistics.fmean(own)
    chat = [scores[b] for b in TASK_BENCHMARKS["chat"] if b in scores]
    return False, statistics.fmean(chat) if chat else 0.0


class _Candidate:
    def __init__(
        self,
        spec: ModelSpec,
        est: Estimate,
        fit: Fit,
        has_task: bool,
        quality: float,
        tps: float | None,
    ) -> None:
        self.spec, self.est, self.fit = spec, est, fit
        self.has_task, self.quality, self.tps = has_task, quality, tps

    def key(self) -> tuple[bool, float, float, int, str, str]:
        headroom = (
            self.fit.gpu_budget_bytes - self.fit.gpu_need_bytes
            if self.est.gpu_bytes
            else self.fit.ram_budget_bytes - self.fit.ram_need_bytes
        )
        return (
            not self.has_task,
            -round(self.quality, 3),
            -(self.tps or 0.0),
            -headroom,
            self.spec.name,
            self.est.quant,
        )


def recommend(
    machine: Machine,
    *,
    runtime: str | None = None,
    context: int | None = None,
    task: Task = "chat",
    text_only: bool = False,
    kv_cache: str | None = None,
    parallel: int = 1,
    flash_attn: FlashAttn = "auto",
    min_speed: float | None = None,
    margin: int = DEFAULT_MARGIN,
    limit: int = 5,
    table: SpecTable | None = None,
) -> RecommendResult:
    """Rank every model x precision the runtime can load on `machine`; best first.

    Returns an empty `recommendations` list when nothing fits (`best()` raises instead).
    """
    table = table or load_specs()
    if task not in TASK_BENCHMARKS:
        raise UsageError(f"unknown task {task!r}; allowed: {', '.join(TASK_BENCHMARKS)}")
    if task == "vision" and text_only:
        raise UsageError("--task vision needs the vision tower; drop --text-only")
    if limit < 1:
        raise UsageError(f"invalid -n {limit}: must be at least 1")
    rt = runtimes.check_runtime(runtime) if runtime else runtimes.default_runtime(machine)
    target = context or DEFAULT_CONTEXT
    notes = []
    if context is None:
        notes.append(
            f"context {target} tokens by default (pass --context to change it); "
            "max_context says how far each pick can go"
        )
    bandwidth = _bandwidth(machine)
    candidates = _candidates(
        table,
        machine,
        rt,
        target,
        task,
        text_only,
        kv_cache,
        parallel,
        flash_attn,
        margin,
        bandwidth,
        shrink=False,
    )
    if not candidates and context is None:
        candidates = _candidates(
            table,
            machine,
            rt,
            target,
            task,
            text_only,
            kv_cache,
            parallel,
            flash_attn,
            margin,
            bandwidth,
            shrink=True,
        )
        if candidates:
            notes.append(f"nothing fits at {target} tokens; contexts were lowered to fit")
    if min_speed is not None:
        candidates = [c for c in candidates if c.tps is not None and c.tps >= min_speed]
    candidates.sort(key=_Candidate.key)
    recs = [
        _recommendation(i + 1, c, table, machine, margin, task)
        for i, c in enumerate(candidates[:limit])
    ]
    if bandwidth is None:
        notes.append("no GPU memory bandwidth known: decode speed not estimated")
    return RecommendResult(
        machine=machine,
        runtime=rt,
        task=task,
        context=target,
        context_source="user" if context else "default",
        recommendations=recs,
        notes=notes,
    )


def _bandwidth(machine: Machine) -> int | None:
    from qwenfit.fit import best_gpu

    gpu = best_gpu(machine)
    return gpu.bandwidth_bytes_per_s if gpu else machine.ram_bandwidth_bytes_per_s


def _candidates(
    table: SpecTable,
    machine: Machine,
    rt: RuntimeName,
    target: int,
    task: Task,
    text_only: bool,
    kv_cache: str | None,
    parallel: int,
    flash_attn: FlashAttn,
    margin: int,
    bandwidth: int | None,
    shrink: bool,
) -> list[_Candidate]:
    found = []
    for spec in table.models:
        has_task, score = task_score(spec, task)
        for quant in runtimes.loadable_precisions(table, spec, rt):
            est = estimate(
                spec,
                runtime=rt,
                quant=quant,
                context=target,
                kv_cache=kv_cache,
                parallel=parallel,
                flash_attn=flash_attn,
                text_only=text_only,
                machine=machine,
                table=table,
            )
            fit = check_fit(est, machine, margin)
            if not fit.fits and shrink:
                ctx = max_context(
                    spec,
                    placement_budget(est, machine, margin),
                    runtime=rt,
                    quant=quant,
                    kv_cache=kv_cache,
                    parallel=parallel,
                    flash_attn=flash_attn,
                    text_only=text_only,
                    machine=machine,
                    table=table,
                )
                if ctx is None or ctx < MIN_USEFUL_CONTEXT:
                    continue
                est = estimate(
                    spec,
                    runtime=rt,
                    quant=quant,
                    context=ctx,
                    kv_cache=kv_cache,
                    parallel=parallel,
                    flash_attn=flash_attn,
                    text_only=text_only,
                    machine=machine,
                    table=table,
                )
                fit = check_fit(est, machine, margin)
            if not fit.fits:
                continue
            loss = table.precisions[quant].quality_loss
            tps = speed.decode_tokens_per_s(est, spec, bandwidth, table)
            found.append(_Candidate(spec, est, fit, has_task, score * (1 - loss), tps))
    return found


def _recommendation(
    rank: int, c: _Candidate, table: SpecTable, machine: Machine, margin: int, task: Task
) -> Recommendation:
    e = c.est
    top = max_context(
        c.spec,
        placement_budget(e, machine, margin),
        runtime=e.runtime,
        quant=e.quant,
        kv_cache=e.kv_cache,
        parallel=e.parallel,
        flash_attn="auto" if e.flash_attn in (None, True) else "off",
        text_only=e.text_only,
        machine=machine,
        table=table,
    )
    loss = table.precisions[e.quant].quality_loss
    where = "GPU" if e.gpu_bytes else "RAM"
    reasons = [
        f"{task} score {c.quality:.1f} ({c.spec.display_name} model-card benchmarks"
        f"{', less ' + format(loss * 100, '.1f') + '% for ' + e.quant if loss else ''})",
        f"needs {e.total_bytes / 2**30:.1f} GiB of {where}; "
        f"{(c.fit.gpu_budget_bytes if e.gpu_bytes else c.fit.ram_budget_bytes) / 2**30:.1f} GiB "
        f"usable after a {c.fit.margin_bytes / 2**30:.1f} GiB margin",
    ]
    if c.tps is not None:
        reasons.append(f"about {c.tps:.0f} tokens/s decode (memory-bandwidth estimate)")
    return Recommendation(
        rank=rank,
        model=c.spec.name,
        display_name=c.spec.display_name,
        runtime=e.runtime,
        quant=e.quant,
        context=e.context,
        max_context=top,
        quality_score=round(c.quality, 2),
        decode_tokens_per_s=c.tps,
        estimate=e,
        fit=c.fit,
        launch=launch_command(e, table=table),
        reasons=reasons,
    )
