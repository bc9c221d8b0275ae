"""`recommend()`: the best Qwen3.5 size, precision and context for a machine, with alternatives.

Policy, in order: expected quality (the model card's scores for the task, reduced by the
measured loss of the precision), then estimated decode speed, then memory headroom, then name.
Candidates must fit by `fit.check_fit` at the target context; only when none does (and the user
did not pin the context) are contexts lowered, never below 4096 tokens.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.errors import UsageError
from qwenfit.fit.preflight import MIN_USEFUL_CONTEXT
from qwenfit.fit.verdict import Fit, check_fit
from qwenfit.hardware.machine import Machine
from qwenfit.launch.commands import LaunchCommand, launch_command
from qwenfit.memory import runtimes
from qwenfit.memory.context import max_context_of
from qwenfit.memory.estimator import estimate_with
from qwenfit.memory.options import DEFAULT_MARGIN, FlashAttn, Options
from qwenfit.memory.record import Estimate, LayoutKind
from qwenfit.specs.table import ModelSpec, RuntimeName, SpecTable, load_specs
from qwenfit.units import GiB

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
# Without --min-speed, picks that would generate slower than people read are left out: silent
# reading of English averages 238 words per minute (Brysbaert 2019, "How many words do we read
# per minute?", J. Memory and Language 109) and a word is about 1.33 tokens, so ~5 tokens/s.
READING_SPEED = 5.0


class Recommendation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(ge=1)
    model: str
    display_name: str
    runtime: str
    quant: str
    context: int
    max_context: int | None = Field(description="Largest context that fits with this pick.")
    placement: LayoutKind = Field(description="gpu, multi_gpu, multi_node, offload or cpu.")
    quality_score: float = Field(description="Task score after the precision's quality loss.")
    tokens_per_second: float | None = Field(description="Estimated decode speed, one sequence.")
    estimate: Estimate
    fit: Fit
    command: str = Field(description="The command that serves the model, quoted for a shell.")
    argv: list[str]
    launch: LaunchCommand = Field(description="Every step, with environment variables.")
    reasons: list[str]


class Closest(BaseModel):
    """When nothing fits: the configuration that misses by the least, and by how much."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    quant: str
    context: int
    missing_bytes: int
    advice: str


class RecommendResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    machine: Machine
    runtime: str
    task: Task
    context: int
    context_source: Literal["user", "default"]
    recommendations: list[Recommendation]
    closest: Closest | None = None
    notes: list[str] = []


def task_score(spec: ModelSpec, task: Task) -> tuple[bool, float]:
    """(has scores for this task, mean score); models without them fall back to 'chat'."""
    scores = spec.quality.scores if spec.quality else {}
    own = [scores[b] for b in TASK_BENCHMARKS[task] if b in scores]
    if own:
        return True, statistics.fmean(own)
    chat = [scores[b] for b in TASK_BENCHMARKS["chat"] if b in scores]
    return False, statistics.fmean(chat) if chat else 0.0


@dataclass(frozen=True)
class _Search:
    """Everything fixed during one recommendation; `estimate` varies model, quant, context."""

    table: SpecTable
    machine: Machine
    runtime: RuntimeName
    task: Task
    options: Options
    only: set[str] | None

    def estimate(self, spec: ModelSpec, quant: str, context: int) -> Estimate:
        options = self.options.model_copy(
            update={"runtime": self.runtime, "quant": quant, "context": context}
        )
        return estimate_with(spec, options, self.machine, self.table)

    def max_context(self, est: Estimate) -> int | None:
        return max_context_of(est, self.machine, self.options.margin, self.table)


@dataclass(frozen=True)
class _Candidate:
    spec: ModelSpec
    est: Estimate
    fit: Fit
    has_task: bool
    quality: float

    def key(self) -> tuple[bool, float, float, int, str, str]:
        headroom = (
            self.fit.gpu_budget_bytes - self.fit.gpu_need_bytes
            if self.est.gpu_bytes
            else self.fit.ram_budget_bytes - self.fit.ram_need_bytes
        )
        return (
            not self.has_task,
            -round(self.quality, 3),
            -(self.est.tokens_per_second or 0.0),
            -headroom,
            self.spec.name,
            self.est.quant,
        )


def _check_arguments(
    machine: object, context: object, limit: object, min_speed: object, models: object
) -> None:
    """Wrong-typed arguments of `recommend` as UsageError (the rest goes through `Options`)."""
    if not isinstance(machine, Machine):
        raise UsageError(f"invalid machine {machine!r:.60}: must be a Machine (see probe())")
    if context is not None:
        Options.of(context=context)
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise UsageError(f"invalid limit {limit!r:.60}: must be a whole number of at least 1")
    if min_speed is not None and (
        isinstance(min_speed, bool)
        or not isinstance(min_speed, (int, float))
        or not math.isfinite(min_speed)
        or min_speed < 0
    ):
        raise UsageError(f"invalid min_speed {min_speed!r:.60}: must be a finite number >= 0")
    if models is not None and (
        not isinstance(models, (list, tuple)) or not all(isinstance(m, str) for m in models)
    ):
        raise UsageError(f"invalid models {models!r:.60}: must be a list of model names")


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
    allow_offload: bool = False,
    nodes: int = 1,
    margin: int = DEFAULT_MARGIN,
    limit: int = 5,
    models: list[str] | None = None,
    table: SpecTable | None = None,
) -> RecommendResult:
    """Rank every model x precision the runtime can load on `machine`; best first.

    `models` restricts the candidates to these names or aliases. Configurations that fit the
    GPU(s) whole come first. Offloading experts or layers to RAM
    (llama.cpp, Ollama) is considered when `allow_offload` is set, or when nothing else fits:
    it runs, but reads part of the weights at RAM speed. Returns an empty `recommendations`
    list (and `closest`) when nothing fits at all.
    """
    _check_arguments(machine, context, limit, min_speed, models)
    table = table or load_specs()
    if not isinstance(task, str) or task not in TASK_BENCHMARKS:
        raise UsageError(f"unknown task {task!r:.60}; allowed: {', '.join(TASK_BENCHMARKS)}")
    if task == "vision" and text_only:
        raise UsageError("--task vision needs the vision tower; drop --text-only")
    if limit < 1:
        raise UsageError(f"invalid -n {limit}: must be at least 1")
    rt = runtimes.check_runtime(runtime) if runtime else runtimes.default_runtime(machine)
    chosen = {table.get(m).name for m in models} if models else None
    if models and not runtime:  # as check does: a runtime that loads the chosen model
        rt = runtimes.runtime_for(table.get(models[0]), rt)
    options = Options.of(
        kv_cache=kv_cache,
        parallel=parallel,
        flash_attn=flash_attn,
        text_only=text_only,
        allow_offload=allow_offload,
        nodes=nodes,
        margin=margin,
    )
    search = _Search(table, machine, rt, task, options, chosen)
    target = context or DEFAULT_CONTEXT
    notes = []
    if context is None:
        notes.append(
            f"context {target} tokens by default (pass --context to change it); "
            "max_context says how far each pick can go"
        )
    candidates, misses = _candidates(search, target, shrink=False)
    if not candidates and context is None:
        candidates, _ = _candidates(search, target, shrink=True)
        if candidates:
            notes.append(f"nothing fits at {target} tokens; contexts were lowered to fit")
    if not candidates and not allow_offload and rt in ("llama.cpp", "ollama") and machine.gpus:
        search = replace(search, options=options.model_copy(update={"allow_offload": True}))
        candidates, _ = _candidates(search, target, shrink=context is None)
        if candidates:
            notes.append(
                "nothing fits the GPU whole: these picks keep part of the weights in "
                "RAM, which is much slower"
            )
    if min_speed is not None:
        candidates = [
            c
            for c in candidates
            if c.est.tokens_per_second is not None and c.est.tokens_per_second >= min_speed
        ]
    else:
        readable = [
            c
            for c in candidates
            if c.est.tokens_per_second is None or c.est.tokens_per_second >= READING_SPEED
        ]
        if len(readable) < len(candidates):
            notes.append(
                f"left out picks slower than reading speed ({READING_SPEED} tokens/s); "
                "pass --min-speed 0 to see them"
            )
        candidates = readable or candidates
    candidates.sort(key=_Candidate.key)
    recs = [_recommendation(i + 1, c, search) for i, c in enumerate(candidates[:limit])]
    if candidates and candidates[0].est.tokens_per_second is None:
        notes.append("memory bandwidth of this device unknown: decode speed not estimated")
    closest = None if recs else _closest(misses, machine, rt)
    return RecommendResult(
        machine=machine,
        runtime=rt,
        task=task,
        context=target,
        context_source="user" if context else "default",
        recommendations=recs,
        closest=closest,
        notes=notes,
    )


def _candidates(
    search: _Search, target: int, shrink: bool
) -> tuple[list[_Candidate], list[tuple[Estimate, Fit]]]:
    """Fitting candidates, and (when none fit) every miss for `_closest`."""
    found, misses = [], []
    for spec in search.table.models:
        if search.only is not None and spec.name not in search.only:
            continue
        has_task, score = task_score(spec, search.task)
        for quant in runtimes.loadable_precisions(search.table, spec, search.runtime):
            est = search.estimate(spec, quant, target)
            fit = check_fit(est, search.machine, search.options.margin)
            if not fit.fits and shrink:
                ctx = search.max_context(est)
                if ctx is None or ctx < MIN_USEFUL_CONTEXT:
                    continue
                est = search.estimate(spec, quant, ctx)
                fit = check_fit(est, search.machine, search.options.margin)
            if not fit.fits:
                misses.append((est, fit))
                continue
            loss = search.table.precisions[quant].quality_loss
            found.append(_Candidate(spec, est, fit, has_task, score * (1 - loss)))
    return found, misses


def _closest(misses: list[tuple[Estimate, Fit]], machine: Machine, runtime: str) -> Closest | None:
    if not misses:
        return None
    est, fit = min(misses, key=lambda m: (m[1].missing_bytes, m[0].model, m[0].quant))
    where = "GPU memory" if est.gpu_bytes else "RAM"
    advice = f"{est.model} at {est.quant} needs {fit.missing_bytes / GiB:.1f} GiB more {where}"
    if est.gpu_bytes and runtime in ("vllm", "transformers"):
        advice += "; or try --runtime llama.cpp, whose GGUF quantizations are smaller"
    elif not machine.has_gpu:
        advice += "; a GPU, more RAM or a shorter --context would help"
    return Closest(
        model=est.model,
        quant=est.quant,
        context=est.context,
        missing_bytes=fit.missing_bytes,
        advice=advice,
    )


def _recommendation(rank: int, c: _Candidate, search: _Search) -> Recommendation:
    e = c.est
    top = search.max_context(e)
    loss = search.table.precisions[e.quant].quality_loss
    where = "GPU" if e.gpu_bytes else "RAM"
    budget = c.fit.gpu_budget_bytes if e.gpu_bytes else c.fit.ram_budget_bytes
    lossy = f", less {loss * 100:.1f}% for {e.quant}" if loss else ""
    reasons = [
        f"{search.task} score {c.quality:.1f} ({c.spec.display_name} model-card benchmarks{lossy})",
        f"needs {e.total_bytes / GiB:.1f} GiB of {where}; {budget / GiB:.1f} GiB usable "
        + (
            "(what vLLM claims at start)"
            if e.runtime == "vllm" and e.gpu_bytes
            else f"after a {c.fit.margin_bytes / GiB:.1f} GiB margin"
        ),
    ]
    if e.tokens_per_second is not None:
        reasons.append(
            f"about {e.tokens_per_second:.0f} tokens/s decode (memory-bandwidth estimate)"
        )
    launch = launch_command(e, table=search.table)
    serve = launch.steps[-1]
    return Recommendation(
        rank=rank,
        model=c.spec.name,
        display_name=c.spec.display_name,
        runtime=e.runtime,
        quant=e.quant,
        context=e.context,
        max_context=top,
        placement=e.layout.kind,
        quality_score=round(c.quality, 2),
        tokens_per_second=e.tokens_per_second,
        estimate=e,
        fit=c.fit,
        command=serve.shell,
        argv=serve.argv,
        launch=launch,
        reasons=reasons,
    )
