"""`recommend()`: the best Qwen3.5 size, precision, KV cache, vision and context for a machine.

The policy (floors, ties, thresholds and their sources) is `policy`; the candidate space and its
pruning is `search`; the sentences about each pick are `explain`; `docs/recommending.md` states
it all for people, with a panel of machines kept current by tests/test_recommend_panel.py.

Over 400 lines because the result records (`Recommendation`, `Closest`, `RecommendResult`) live
beside the one function that builds them; the policy, search and explanations are their own
modules.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.adapters import MLX, VLLM, adapter
from qwenfit.bounds import check_cost
from qwenfit.errors import UsageError
from qwenfit.fit.verdict import Fit
from qwenfit.hardware.machine import Machine
from qwenfit.launch.commands import LaunchCommand, launch_command
from qwenfit.launch.common import Task
from qwenfit.memory import runtimes, speed
from qwenfit.memory.options import DEFAULT_MARGIN, FlashAttn, Options
from qwenfit.memory.record import Estimate, LayoutKind
from qwenfit.recommender import explain, policy
from qwenfit.recommender.policy import TASK_BENCHMARKS
from qwenfit.recommender.search import Candidate, Miss, Search, SpeedSource, task_score
from qwenfit.specs.table import DEFAULT_FAMILY, ModelSpec, SpecTable, load_specs
from qwenfit.units import GiB, format_context

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
    context: int
    context_source: Literal["user", "default"]
    min_speed: float = Field(0.0, description="The usable-speed floor applied, tokens/s.")
    min_speed_source: Literal["user", "task default"] = "task default"
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
        not isinstance(models, (list, tuple))
        or not all(isinstance(m, (str, ModelSpec)) for m in models)
    ):
        raise UsageError(
            f"invalid models {models!r:.60}: must be a list of model names or ModelSpecs"
        )


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


def recommend(
    machine: Machine,
    *,
    runtime: str | None = None,
    quant: str | None = None,
    context: int | None = None,
    task: Task = "chat",
    text_only: bool = False,
    mtp: bool = False,
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
) -> RecommendResult:
    """Rank every model x precision x KV cache x vision variant the runtime can run on
    `machine`; best first (see `policy`).

    `models` restricts the candidates to these names, aliases or ModelSpecs (any checkpoint)
    and `quant` to one precision; otherwise the models of `family` are ranked (qwen3.5 by
    default, qwen3.6, qwen3.8 or all). `mtp` sizes every pick with MTP speculative decoding
    (llama.cpp, vLLM). Configurations that fit the GPU(s) whole are searched first; offloading
    experts or layers to RAM (llama.cpp, Ollama) is considered when `allow_offload` is set, or
    when nothing else fits. Returns an empty `recommendations` list (and `closest`) when nothing
    fits at all.
    """
    _check_arguments(machine, context, limit, min_speed, models)
    check_cost(len(machine.gpus), nodes if isinstance(nodes, int) else 1, limit)
    table = table or load_specs()
    if not isinstance(task, str) or task not in TASK_BENCHMARKS:
        raise UsageError(f"unknown task {task!r:.60}; allowed: {', '.join(TASK_BENCHMARKS)}")
    if task == "vision" and text_only:
        raise UsageError("--task vision needs the vision tower; drop --text-only")
    if limit < 1:
        raise UsageError(f"invalid -n {limit}: must be at least 1")
    if min_speed is not None and min_speed < 0:
        raise UsageError(f"invalid --min-speed {min_speed}: must be 0 or more")
    table, specs = _with_models(table, models)
    rt = runtimes.check_runtime(runtime) if runtime else runtimes.default_runtime(machine)
    if specs and not runtime:  # as check does: a runtime that loads the chosen model
        rt = runtimes.runtime_for(specs[0], rt)
    rt = runtimes.check_runtime_on(machine, rt)
    in_family = table.family_models(family)
    chosen = {m.name for m in specs} if specs else {m.name for m in in_family}
    q = None
    if quant is not None:
        q = runtimes.normal_precision(table, quant)
        for spec in specs:  # a named model must be loadable at it: say so, with what is
            runtimes.check_quant(table, spec, rt, q)
    options = Options.of(
        mtp=mtp,
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
    floor = policy.SPEED_FLOOR[task] if min_speed is None else float(min_speed)
    threshold = policy.tie_threshold(task)
    target = context or policy.TASK_CONTEXT[task]
    notes: list[str] = []
    warnings: list[str] = []
    if runtime is None:
        notes.append(f"runtime {rt}: {_runtime_reason(machine, rt)}")
    if context is None:
        notes.append(
            f"context {target} tokens: the default for thinking tasks (the model card asks "
            "for 32,768 output tokens); pass --context to change it"
        )
    offload = allow_offload
    candidates, misses = search.candidates(target, shrink=False, allow_offload=offload)
    if not candidates and context is None:
        candidates, _ = search.candidates(target, shrink=True, allow_offload=offload)
        if candidates:
            warnings.append(
                f"nothing fits at {target} tokens: contexts were lowered to fit; a thinking "
                "model may be cut off before it answers"
            )
    if (
        not candidates
        and not offload
        and adapter(rt).layer_offload
        and adapter(rt).gguf
        and machine.gpus
    ):
        offload = True
        search.options = options.model_copy(update={"allow_offload": True})
        candidates, _ = search.candidates(target, shrink=context is None, allow_offload=True)
        if candidates:
            warnings.append(
                "nothing fits the GPU whole: these picks keep part of the weights in RAM, "
                "which is much slower"
            )
    ranked = policy.rank(
        candidates,
        quality=lambda c: c.quality,
        speed=lambda c: c.speed,
        tiebreak=Candidate.tiebreak,
        floor=floor,
        threshold=threshold,
    )
    first = policy.variants(task, kv_types, options.kv_cache, text_only, adapter(rt).drops_vision)[
        0
    ]
    recs = [
        _recommendation(i + 1, c, search, floor, first, target, text_only)
        for i, c in enumerate(ranked[:limit])
    ]
    why = None
    if ranked:
        best = ranked[0]
        if best.speed is None:
            warnings.append(
                "decode speed unknown (a memory bandwidth is unknown): picks are ranked by "
                "quality alone; give --gpu from the catalog or --ram-bandwidth"
            )
        elif best.speed < floor:
            warnings.append(
                f"the pick runs about {best.speed:.0f} tokens/s, below the {floor:g} tokens/s "
                f"floor for {task}: nothing faster fits"
            )
        why = explain.why_not_bigger(search, best, ranked, misses, floor, threshold, offload)
        top = best.spec
        newer = [m for m in table.newer_same_shape(top) if m.family != top.family]
        if newer:
            notes.append(
                f"{newer[0].display_name} (released {newer[0].released}) has the same "
                f"architecture and memory as {top.display_name}: --family {newer[0].family}"
            )
    closest = None if recs else _closest(misses, machine, rt)
    return RecommendResult(
        machine=machine,
        runtime=rt,
        runtime_source="user" if runtime else "machine",
        task=task,
        context=target,
        context_source="user" if context else "default",
        min_speed=floor,
        min_speed_source="user" if min_speed is not None else "task default",
        tie_threshold=threshold,
        recommendations=recs,
        why_not_bigger=why,
        closest=closest,
        notes=notes,
        warnings=warnings,
    )


def _runtime_reason(machine: Machine, rt: str) -> str:
    if rt in machine.runtimes:
        return "installed here"
    if machine.runtimes:
        return "installed here (the usual runtime for this hardware is not)"
    if rt == VLLM:
        return "datacenter GPUs or a multi-GPU server (none installed here)"
    if runtimes.is_apple(machine):
        if rt == MLX:
            return "Apple Silicon: most Mac users run MLX conversions with mlx-lm (none here)"
        return "Apple Silicon runs GGUF builds on Metal (none installed here)"
    return "a desktop GPU or CPU (none installed here)"


def _closest(misses: list[Miss], machine: Machine, runtime: str) -> Closest | None:
    estimated = [m for m in misses if m.est is not None and m.fit is not None]
    if not estimated:
        return None
    m = min(estimated, key=lambda x: (x.fit.missing_bytes, x.spec.name, x.quant))  # type: ignore[union-attr]
    assert m.est is not None and m.fit is not None
    est, fit = m.est, m.fit
    where = "GPU memory" if est.gpu_bytes else "RAM"
    advice = f"{est.model} at {est.quant} needs {fit.missing_bytes / GiB:.1f} GiB more {where}"
    if est.gpu_bytes and not adapter(runtime).gguf:
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


def _recommendation(
    rank: int,
    c: Candidate,
    search: Search,
    floor: float,
    first: policy.Variant,
    target: int,
    user_text_only: bool,
) -> Recommendation:
    e = c.est
    top = search.max_context(c.cfg)
    w_loss = search.table.precisions[e.quant].quality_loss
    kv_loss = policy.kv_quality_loss(e.kv_cache)
    lossy = "".join(
        [
            f", less {w_loss * 100:.2g}% for {e.quant}" if w_loss else "",
            f", less {kv_loss * 100:.2g}% for KV {e.kv_cache}" if kv_loss else "",
        ]
    )
    usable = (
        "what vLLM claims at start"
        if adapter(e.runtime).gpu_share and e.gpu_bytes
        else f"after a {c.fit.margin_bytes / GiB:.1f} GiB margin"
    )
    need = []
    if e.gpu_bytes:
        need.append(
            f"needs {e.gpu_bytes / GiB:.1f} GiB of GPU memory of "
            f"{c.fit.gpu_budget_bytes / GiB:.1f} GiB usable ({usable})"
        )
    if e.ram_bytes or not e.gpu_bytes:
        caches = (
            f" ({(e.ram_bytes - e.cache_limit_bytes) / GiB:.1f} at load; llama-server's prompt "
            f"cache and checkpoints start empty and may grow to {e.cache_limit_bytes / GiB:.1f})"
            if e.cache_limit_bytes
            else ""
        )
        need.append(
            f"{e.ram_bytes / GiB:.1f} GiB of RAM{caches} of "
            f"{c.fit.ram_budget_bytes / GiB:.1f} GiB usable"
        )
    reasons = [
        f"{search.task} score {c.quality:.1f} ({c.spec.display_name} model-card benchmarks{lossy})",
        "; ".join(need),
    ]
    warnings = []
    if c.speed is not None:
        how = (
            "memory-bandwidth estimate"
            if c.speed_source == "estimated"
            else f"assuming {policy.ASSUMED_RAM_BANDWIDTH / 1e9:.1f} GB/s RAM; "
            "--ram-bandwidth to set it"
        )
        reasons.append(f"about {c.speed:.0f} tokens/s decode ({how})")
    else:
        reasons.append("decode speed unknown (a memory bandwidth is unknown)")
    if c.speed is None or c.speed < floor:
        warnings.append(
            f"below the {floor:g} tokens/s usable-speed floor"
            if c.speed is not None
            else "speed unknown: not counted as reaching the usable-speed floor"
        )
    seqs = c.max_num_seqs
    if e.parallel > 1:
        reasons.append(
            f"{c.concurrency} users at once, about {c.aggregate or 0:.0f} tokens/s in all "
            "(per-user speed x users, memory-bound decode)"
        )
    if seqs is not None and seqs < e.parallel:
        warnings.append(
            f"the memory left for KV blocks holds {seqs} sequences of "
            f"{format_context(e.context)}, fewer than --parallel {e.parallel}"
        )
    if speed.fp8_weight_only(e, search.machine):
        warnings.append(
            "FP8 weights on a GPU without FP8 units (compute capability < 8.9): vLLM runs them "
            "weight-only (W8A16, FP8 Marlin), slower than this estimate, above all in prefill "
            "(docs.vllm.ai features/quantization/fp8)"
        )
    if e.runtime == VLLM and e.kv_cache == "fp8":
        warnings.append(
            "FP8 KV cache on this hybrid model: reports of corrupted output (vLLM #42179) and of "
            "little memory gain (vLLM #55196); --kv-cache bf16 is the safe choice"
        )
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
        max_context=top,
        placement=e.layout.kind,
        quality_score=round(c.quality, 2),
        tokens_per_second=c.speed,
        speed_source=c.speed_source,
        meets_speed_floor=c.speed is not None and c.speed >= floor,
        parallel=e.parallel,
        max_num_seqs=seqs,
        aggregate_tokens_per_second=c.aggregate,
        gave_up=explain.gave_up(c, first, target, user_text_only),
        warnings=warnings,
        estimate=e,
        fit=c.fit,
        command=serve.shell,
        argv=serve.argv,
        launch=launch,
        reasons=reasons,
    )
