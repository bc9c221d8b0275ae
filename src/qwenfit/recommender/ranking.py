"""`recommend()`: the best Qwen3.5 size, precision, KV cache, vision and context for a machine.

The policy (floors, ties, thresholds and their sources) is `policy`; the candidate space and its
pruning is `search`; the sentences about each pick are `explain`; `docs/recommending.md` states
it all for people, with a panel of machines kept current by tests/test_recommend_panel.py.

The result records (`Recommendation`, `Closest`, `RecommendResult`) live beside the function
that builds them; the policy, search and sentences are their own modules.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.adapters import OLLAMA, VLLM, RuntimeName, adapter
from qwenfit.bounds import check_cost
from qwenfit.errors import UsageError
from qwenfit.fit.verdict import Fit, check_fit
from qwenfit.hardware.machine import Machine
from qwenfit.launch.commands import LaunchCommand, launch_command
from qwenfit.launch.common import Task
from qwenfit.memory import runtimes
from qwenfit.memory.config import Config
from qwenfit.memory.options import DEFAULT_MARGIN, FlashAttn, Options
from qwenfit.memory.record import Estimate, LayoutKind
from qwenfit.recommender import explain, policy, quality
from qwenfit.recommender.policy import TASK_BENCHMARKS
from qwenfit.recommender.search import (
    Candidate,
    Miss,
    Search,
    SpeedSource,
    shared_benchmarks,
    task_score,
)
from qwenfit.specs.table import DEFAULT_FAMILY, ModelSpec, SpecTable, load_specs

__all__ = [
    "TASK_BENCHMARKS",
    "Closest",
    "RecommendResult",
    "Recommendation",
    "Task",
    "recommend",
    "task_score",
]


class Recommendation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    rank: int = Field(ge=1)
    model: str
    display_name: str
    runtime: str
    task: Task = Field(description="The task this pick was made for (drives the launch flags).")
    quant: str
    kv_cache: str = Field(description="KV cache type of this pick.")
    text_only: bool = Field(description="True: the vision tower is left out.")
    context: int
    max_context: int | None = Field(description="Largest context that fits with this pick.")
    placement: LayoutKind = Field(description="gpu, multi_gpu, multi_node, offload or cpu.")
    quality_score: float = Field(
        description="Task score after the quality loss of the precision and the KV cache type."
    )
    tokens_per_second: float | None = Field(description="Estimated decode speed, one sequence.")
    speed_source: SpeedSource = Field(
        description="estimated (known bandwidths), assumed RAM bandwidth, or unknown."
    )
    meets_speed_floor: bool = Field(description="Speed known and at least the floor.")
    parallel: int = Field(ge=1, description="Sequences served at once, as asked.")
    max_num_seqs: int | None = Field(
        description="vLLM: sequences at this context the memory left for KV blocks holds."
    )
    aggregate_tokens_per_second: float | None = Field(
        description="Per-user speed x sequences served at once (memory-bound decode)."
    )
    gave_up: list[str] = Field(description="What this pick traded away to fit.")
    warnings: list[str] = []
    estimate: Estimate
    fit: Fit
    command: str = Field(description="The command that serves the model, quoted for a shell.")
    argv: list[str]
    launch: LaunchCommand = Field(description="Every step, with environment variables.")
    reasons: list[str]


class Closest(BaseModel):
    """When nothing fits: the configuration that misses by the least, and by how much."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    model: str
    quant: str
    context: int
    missing_bytes: int
    advice: str


class RecommendResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    machine: Machine
    runtime: str
    runtime_source: Literal["user", "machine"] = Field(
        "machine", description="user: --runtime; machine: what people on this hardware use."
    )
    task: Task
    context: int = Field(description="The context searched at (each pick says its own).")
    context_source: Literal["user", "default"]
    min_speed: float = Field(0.0, description="The usable-speed floor applied, tokens/s.")
    min_speed_source: Literal["user", "task default"] = "task default"
    prefer: policy.Prefer = Field(
        "quality",
        description="quality: the tier rule (a larger model wins on a higher card score); "
        "speed: noise ties across tiers, the faster pick wins them (--prefer speed or a "
        "--min-speed).",
    )
    tie_threshold: float = Field(
        0.0, description="Score points within which two picks count as equal (benchmark noise)."
    )
    recommendations: list[Recommendation]
    why_not_bigger: str | None = Field(
        None, description="The nearest better model, what it lacks, and what would fit it."
    )
    closest: Closest | None = None
    notes: list[str] = []
    warnings: list[str] = []


def _check_arguments(
    machine: object,
    context: object,
    limit: object,
    min_speed: object,
    models: object,
    task: object,
    text_only: bool,
    prefer: object,
) -> None:
    """Wrong values of `recommend`'s own arguments as UsageError (the rest go through
    `Options`)."""
    if not isinstance(machine, Machine):
        raise UsageError(f"invalid machine {machine!r:.60}: must be a Machine (see probe())")
    if context is not None:
        Options.of(context=context)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UsageError(f"invalid limit {limit!r:.60}: must be a whole number of at least 1")
    if min_speed is not None and (
        isinstance(min_speed, bool)
        or not isinstance(min_speed, (int, float))
        or not math.isfinite(min_speed)
        or min_speed < 0
    ):
        raise UsageError(f"invalid min_speed {min_speed!r:.60}: must be a finite number >= 0")
    if models is not None and (
        not isinstance(models, (list, tuple))
        or not all(isinstance(m, (str, ModelSpec)) for m in models)
    ):
        raise UsageError(
            f"invalid models {models!r:.60}: must be a list of model names or ModelSpecs"
        )
    if not isinstance(task, str) or task not in TASK_BENCHMARKS:
        raise UsageError(f"unknown task {task!r:.60}; allowed: {', '.join(TASK_BENCHMARKS)}")
    if task == "vision" and text_only:
        raise UsageError("--task vision needs the vision tower; drop --text-only")
    if prefer not in ("quality", "speed"):
        raise UsageError(f"invalid prefer {prefer!r:.60}; allowed: quality, speed")


def _with_models(
    table: SpecTable, models: list[str | ModelSpec] | None
) -> tuple[SpecTable, list[ModelSpec]]:
    """The specs `models` names, and the table holding them: a ModelSpec from a checkpoint
    that the table lacks is appended to a copy, so it is ranked like any other row."""
    specs: list[ModelSpec] = []
    for m in models or []:
        if isinstance(m, str):
            specs.append(table.get(m))
        elif any(row is m for row in table.models):
            specs.append(m)
        else:
            if any(row.name == m.name for row in table.models):
                raise UsageError(f"model {m.name!r} is already a different row of the table")
            table = table.model_copy(update={"models": [*table.models, m]})
            specs.append(m)
    return table, specs


def _runtime(machine: Machine, runtime: str | None, specs: list[ModelSpec]) -> RuntimeName:
    rt = runtimes.check_runtime(runtime) if runtime else runtimes.default_runtime(machine)
    if specs and not runtime:  # as check does: a runtime that loads the chosen model
        rt = runtimes.runtime_for(specs[0], rt)
    return runtimes.check_runtime_on(machine, rt)


def recommend(
    machine: Machine,
    *,
    runtime: str | None = None,
    quant: str | None = None,
    context: int | None = None,
    task: Task = "chat",
    text_only: bool = False,
    mtp: bool = False,
    llama_cpp_build: int | None = None,
    family: str = DEFAULT_FAMILY,
    kv_cache: str | None = None,
    parallel: int = 1,
    ubatch: int | None = None,
    flash_attn: FlashAttn = "auto",
    min_speed: float | None = None,
    allow_offload: bool = False,
    nodes: int = 1,
    margin: int = DEFAULT_MARGIN,
    limit: int = 5,
    models: list[str | ModelSpec] | None = None,
    table: SpecTable | None = None,
    prefer: policy.Prefer = "quality",
) -> RecommendResult:
    """Rank every model x precision x KV cache x vision variant the runtime can run on
    `machine`; best first (see `policy`).

    `models` restricts the candidates to these names, aliases or ModelSpecs (any checkpoint)
    and `quant` to one precision; otherwise the models of `family` are ranked (qwen3.5 by
    default, qwen3.6, qwen3.8 or all). `mtp` sizes every pick with MTP speculative decoding
    (llama.cpp, vLLM).
    Configurations that fit the GPU(s) whole are searched first; with llama.cpp, MoE models
    may keep routed experts in RAM when that keeps the speed floor; other offloading (layers
    in RAM) is considered when `allow_offload` is set, or when nothing else fits. Without
    `context`, each pick gets the context the model cards advise when it fits
    (`policy.context_goal`). `prefer="speed"` lets noise ties span size tiers. Returns an
    empty `recommendations` list (and `closest`) when nothing fits at all.
    """
    _check_arguments(machine, context, limit, min_speed, models, task, text_only, prefer)
    check_cost(len(machine.gpus), nodes if isinstance(nodes, int) else 1, limit)
    table = table or load_specs()
    table, specs = _with_models(table, models)
    rt = _runtime(machine, runtime, specs)
    chosen = {m.name for m in specs} if specs else {m.name for m in table.family_models(family)}
    q = None
    if quant is not None:
        q = runtimes.normal_precision(table, quant)
        for spec in specs:  # a named model must be loadable at it: say so, with what is
            runtimes.check_quant(table, spec, rt, q)
    options = Options.of(
        mtp=mtp,
        llama_cpp_build=llama_cpp_build,
        kv_cache=runtimes.check_kv_cache(table, rt, kv_cache) if kv_cache else None,
        parallel=parallel,
        ubatch=ubatch,
        flash_attn=flash_attn,
        text_only=text_only,
        allow_offload=allow_offload,
        nodes=nodes,
        margin=margin,
    )
    kv_types = tuple(
        k for k in adapter(rt).search_kv_types if k in table.runtimes[rt].kv_cache_types
    ) or (runtimes.check_kv_cache(table, rt, None),)
    search = Search(table, machine, rt, task, options, chosen, kv_types, q)
    compared = [  # the models this runtime can load: their cards set the benchmarks compared
        m for m in table.models if m.name in chosen and runtimes.loadable_precisions(table, m, rt)
    ]
    search.benchmarks = shared_benchmarks(compared, task)
    search.moe_offload = True
    if rt == VLLM and q is None:
        search.fp8_first = policy.fp8_hardware(machine)
    floor = policy.SPEED_FLOOR[task] if min_speed is None else float(min_speed)
    threshold = policy.tie_threshold(task, search.benchmarks)
    target = context or policy.TASK_CONTEXT[task]
    found = _gather(search, target, context is None, floor)
    mode: policy.Prefer = "speed" if prefer == "speed" or min_speed is not None else "quality"
    ranked = _rank(found.candidates, search, floor, threshold, mode)
    if context is None:
        settled = [_settle_context(search, c, floor) for c in ranked[:limit]]
        ranked[:limit] = [c for c, _ in settled]
        short = [why for _, why in settled]
    else:
        short = [""] * len(ranked[:limit])
    first = policy.variants(task, kv_types, options.kv_cache, text_only, adapter(rt).drops_vision)[
        0
    ]
    recs = [
        _recommendation(i + 1, c, search, floor, first, target, text_only, why)
        for i, (c, why) in enumerate(zip(ranked[:limit], short, strict=True))
    ]
    notes = [f"runtime {rt}: {explain.runtime_reason(machine, rt)}"] if runtime is None else []
    if context is None:
        notes.append(explain.context_note(task))
    notes += explain.benchmarks_note(search, compared)
    warnings = list(found.warnings)
    why = None
    if ranked:
        best = ranked[0]
        if best.speed is None:
            warnings.append(explain.UNKNOWN_SPEED_WARNING)
        elif best.speed < floor:
            warnings.append(explain.slow_warning(best.speed, floor, task))
        why = explain.why_not_bigger(
            search,
            best,
            ranked + found.slow_offload,
            found.misses,
            floor,
            threshold,
            found.offload,
            target,
            tiered=mode == "quality",
        )
        if best.est.layout.kind == "offload" and not found.offload:
            notes.append(explain.EXPERTS_NOTE)
        if runtime is None and OLLAMA not in machine.runtimes:
            hint = explain.llamacpp_experts_hint(search, best, floor)
            if hint:
                notes.append(hint)
        top = best.spec
        newer = [m for m in table.newer_same_shape(top) if m.family != top.family]
        if newer:
            notes.append(explain.newer_note(newer[0], top))
    return RecommendResult(
        machine=machine,
        runtime=rt,
        runtime_source="user" if runtime else "machine",
        task=task,
        context=target,
        context_source="user" if context else "default",
        min_speed=floor,
        min_speed_source="user" if min_speed is not None else "task default",
        prefer=mode,
        tie_threshold=threshold,
        recommendations=recs,
        why_not_bigger=why,
        closest=None if recs else _closest(found.misses, machine, rt),
        notes=notes,
        warnings=warnings,
    )


@dataclasses.dataclass
class _Found:
    candidates: list[Candidate]
    misses: list[Miss]
    offload: bool  # layer offload allowed (asked, or nothing fits the GPUs whole)
    warnings: list[str]
    slow_offload: list[Candidate]  # experts in RAM below the floor: "why not bigger" only


def _gather(search: Search, target: int, may_shrink: bool, floor: float) -> _Found:
    """Candidates at `target`; then at a lowered context (default context only); then with
    layers in RAM (llama.cpp, Ollama) when nothing fits the GPUs whole. Expert offload that
    was not asked for stays only when it keeps the speed floor."""
    offload = search.options.allow_offload
    candidates, misses = search.candidates(target, shrink=False, allow_offload=offload)
    gpus = bool(search.machine.gpus)
    candidates, slow = _keep_fast_offload(candidates, floor, offload or not gpus)
    warnings: list[str] = []
    if not candidates and may_shrink:
        candidates, _ = search.candidates(target, shrink=True, allow_offload=offload)
        candidates, _ = _keep_fast_offload(candidates, floor, offload or not gpus)
        if candidates:
            warnings.append(explain.SHRUNK_WARNING.format(target=target))
    if (
        not candidates
        and not offload
        and adapter(search.runtime).layer_offload
        and adapter(search.runtime).gguf
        and search.machine.gpus
    ):
        offload = True
        search.options = search.options.model_copy(update={"allow_offload": True})
        candidates, _ = search.candidates(target, shrink=may_shrink, allow_offload=True)
        if candidates:
            warnings.append(explain.OFFLOAD_WARNING)
    return _Found(candidates, misses, offload, warnings, slow)


def _keep_fast_offload(
    candidates: list[Candidate], floor: float, asked: bool
) -> tuple[list[Candidate], list[Candidate]]:
    """(kept, dropped): on a GPU machine, weights in RAM that were not asked for stay only
    as MoE experts (--n-cpu-moe) at or above the speed floor."""
    if asked:
        return candidates, []
    kept: list[Candidate] = []
    dropped: list[Candidate] = []
    for c in candidates:
        layout = c.est.layout
        fast = c.speed is not None and c.speed >= floor
        ok = layout.kind not in ("offload", "cpu") or (bool(layout.cpu_moe_layers) and fast)
        (kept if ok else dropped).append(c)
    return kept, dropped


def _rank(
    candidates: list[Candidate],
    search: Search,
    floor: float,
    threshold: float,
    prefer: policy.Prefer,
) -> list[Candidate]:
    def card(c: Candidate) -> float:
        has, score = search.score(c.spec)
        return score if has else float("-inf")

    return policy.rank(
        candidates,
        quality=lambda c: c.quality,
        speed=lambda c: c.speed,
        tiebreak=Candidate.tiebreak,
        floor=floor,
        threshold=threshold,
        tier=lambda c: policy.tier(c.spec),
        card=card,
        strong=lambda c: policy.strong_enough(c.est.quant, c.est.kv_cache),
        model=lambda c: c.spec.name,
        prefer=prefer,
        comparable=lambda c: c.has_task,
        release=lambda c: (c.spec.architecture_key, c.est.quant),
    )


def _settle_context(search: Search, c: Candidate, floor: float) -> tuple[Candidate, str]:
    """`c` at the context the cards advise (`policy.context_goal`) when its memory holds it,
    with the same model and precision; a KV cache no worse than q8_0 may be used to get
    there. Kept as it is when a longer context would cost the speed floor or users served, or
    when `c` is below the floor already. Also says what kept it short of the card's advice
    ("" when nothing did)."""
    if c.shrunk:
        return c, ""
    e = c.est
    native = c.spec.context.extended or c.spec.context.native
    if (c.speed is None or c.speed < floor) and min(policy.CARD_CONTEXT, native) > e.context:
        return c, "slow"  # below the floor already: a longer context would only be slower
    q8_ok = policy.kv_quality_loss(e.kv_cache) < policy.kv_quality_loss("q8_0")
    tries = [e.kv_cache] + (["q8_0"] if q8_ok and "q8_0" in search.kv_types else [])
    best: Candidate | None = None
    why = "memory"
    need = policy.TOOL_CONTEXT.get(search.task, policy.THINKING_CONTEXT)
    offload = _offloads(search, c)
    if e.layout.cpu_moe_layers:
        # More routed experts in RAM make room for a longer context, at some speed: try the
        # cards' 128K, then the tools' 64K, as long as the floor holds.
        cfg = search.config(c.spec, e.quant, e.kv_cache, e.text_only)
        for ctx in sorted({min(policy.CARD_CONTEXT, native), need}, reverse=True):
            if ctx <= e.context:
                continue
            best, failed = _at_context(search, c, cfg, e.kv_cache, ctx, floor)
            if best is not None:
                break
            why = failed or why
        tries = [] if best is not None else tries
    for kv in tries:
        cfg = search.config(c.spec, e.quant, kv, e.text_only)
        placed, _ = search.place(cfg, e.context, offload)
        goal = policy.context_goal(search.task, search.max_context(placed), native)
        if goal <= e.context and kv == e.kv_cache:
            continue
        got, failed = _at_context(search, c, cfg, kv, goal, floor)
        if got is None:
            why = failed or why
            continue
        if best is None or got.est.context > best.est.context:
            best = got
        if best.est.context >= policy.CARD_CONTEXT or (
            kv == e.kv_cache and best.est.context >= need
        ):
            break
    if best is None and why == "speed" and e.context < policy.TOOL_CONTEXT["agent"]:
        cfg = search.config(c.spec, e.quant, e.kv_cache, e.text_only)
        best, _ = _at_context(search, c, cfg, e.kv_cache, policy.TOOL_CONTEXT["agent"], floor)
    out = best if best is not None and best.est.context > e.context else c
    short = min(policy.CARD_CONTEXT, native) > out.est.context
    return out, why if short else ""


def _at_context(
    search: Search, c: Candidate, cfg: Config, kv: str, ctx: int, floor: float
) -> tuple[Candidate | None, str]:
    """`c` re-placed at `ctx` with KV `kv`, or None and why not ("memory", "speed", "users").
    A pick with routed experts in RAM may move more of them; layers go to RAM only when asked."""
    placed, est = search.place(cfg, ctx, _offloads(search, c))
    fit = check_fit(est, search.machine, search.options.margin)
    layers_in_ram = est.layout.kind == "offload" and not est.layout.cpu_moe_layers
    if not fit.fits or (layers_in_ram and not search.options.allow_offload):
        return None, "memory"
    est = search.finished(est)
    tps, source = search.speed(est)
    if c.speed is not None and c.speed >= floor and (tps is None or tps < floor):
        return None, "speed"
    q = c.quality / (1 - policy.kv_quality_loss(c.est.kv_cache)) * (1 - policy.kv_quality_loss(kv))
    got = dataclasses.replace(
        c, cfg=placed, est=est, fit=fit, speed=tps, speed_source=source, quality=q
    )
    if got.concurrency < c.concurrency:
        return None, "users"
    return got, ""


def _offloads(search: Search, c: Candidate) -> bool:
    """Re-place `c` with offload allowed: asked for, or `c` already keeps weights in RAM."""
    return search.options.allow_offload or c.est.layout.kind == "offload"


def _closest(misses: list[Miss], machine: Machine, runtime: str) -> Closest | None:
    estimated = [m for m in misses if m.est is not None and m.fit is not None]
    if not estimated:
        return None
    m = min(estimated, key=lambda x: (x.fit.missing_bytes, x.spec.name, x.quant))  # type: ignore[union-attr]
    assert m.est is not None and m.fit is not None
    return Closest(
        model=m.est.model,
        quant=m.est.quant,
        context=m.est.context,
        missing_bytes=m.fit.missing_bytes,
        advice=explain.closest_advice(m.est, m.fit.missing_bytes, machine, runtime),
    )


def _recommendation(
    rank: int,
    c: Candidate,
    search: Search,
    floor: float,
    first: policy.Variant,
    target: int,
    user_text_only: bool,
    short_of_card: str,
) -> Recommendation:
    e = c.est
    loss = quality.weight_loss(c.spec, e.quant, search.sizes())
    launch = launch_command(e, table=search.table, task=search.task, machine=search.machine)
    serve = launch.steps[-1]
    return Recommendation(
        rank=rank,
        model=c.spec.name,
        display_name=c.spec.display_name,
        runtime=e.runtime,
        task=search.task,
        quant=e.quant,
        kv_cache=e.kv_cache,
        text_only=e.text_only,
        context=e.context,
        max_context=search.max_context(c.cfg),
        placement=e.layout.kind,
        quality_score=round(c.quality, 2),
        tokens_per_second=c.speed,
        speed_source=c.speed_source,
        meets_speed_floor=c.speed is not None and c.speed >= floor,
        parallel=e.parallel,
        max_num_seqs=c.max_num_seqs,
        aggregate_tokens_per_second=c.aggregate,
        gave_up=explain.gave_up(c, first, target, user_text_only, short_of_card, floor),
        warnings=explain.pick_warnings(c, search, floor),
        estimate=e,
        fit=c.fit,
        command=serve.shell,
        argv=serve.argv,
        launch=launch,
        reasons=explain.reasons(c, search, loss),
    )
