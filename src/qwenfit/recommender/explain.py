"""Sentences about a pick and the search: what it gave up to fit, why the next better model is
not it, why this runtime and this context, and what the pick costs (its reasons and warnings).
Every sentence `recommend` prints is written here."""

from __future__ import annotations

import dataclasses

from qwenfit.adapters import LLAMACPP, MLX, OLLAMA, VLLM, adapter
from qwenfit.fit.preflight import MIN_USEFUL_CONTEXT
from qwenfit.fit.verdict import check_fit
from qwenfit.hardware.machine import Machine
from qwenfit.memory import runtimes, speed
from qwenfit.memory.record import Estimate
from qwenfit.recommender import policy
from qwenfit.recommender.quality import Loss
from qwenfit.recommender.quality import precision_bits as quality_bits
from qwenfit.recommender.search import Candidate, Miss, Search
from qwenfit.specs.table import ModelSpec
from qwenfit.units import GiB, format_context


def gave_up(
    c: Candidate,
    first: policy.Variant,
    target: int,
    user_text_only: bool,
    short_of_card: str = "",
    floor: float = 0.0,
) -> list[str]:
    """What this pick traded away to fit, each as one phrase ("KV cache q8_0 to fit 128k").
    `short_of_card`: what kept the default context below the cards' advice ("memory",
    "speed", "users" or "slow"; "" when nothing did)."""
    e = c.est
    at = format_context(e.context)
    out = []
    if short_of_card:
        why = {
            "memory": "a longer one does not fit with this model and precision",
            "speed": f"a longer one would run below the {floor:g} tokens/s floor",
            "users": "a longer one would serve fewer users at once",
            "slow": f"this pick runs below the {floor:g} tokens/s floor already, and a longer "
            "context would be slower still",
        }[short_of_card]
        out.append(
            f"context {at} instead of the {format_context(policy.CARD_CONTEXT)} the model "
            f"cards advise for thinking: {why}"
        )
    if e.kv_cache != first[0]:
        cost = policy.kv_quality_loss(e.kv_cache)
        out.append(
            f"KV cache {e.kv_cache} instead of {first[0]} to fit {at} "
            f"(quality cost {cost * 100:.2g}%)"
        )
    if e.text_only and not user_text_only:
        out.append(f"vision tower left out to fit {at} (text only)")
    if c.shrunk:
        out.append(f"context {at} instead of {format_context(target)}: nothing fits at {target}")
    if e.layout.kind == "offload":
        out.append("part of the weights in RAM, read at RAM speed")
    return out


def why_not_bigger(
    search: Search,
    pick: Candidate,
    ranked: list[Candidate],
    misses: list[Miss],
    floor: float,
    threshold: float,
    allow_offload: bool,
    context: int | None = None,
    tiered: bool = False,
) -> str | None:
    """One line: the nearest better model (beyond noise, or by the tier rule when `tiered`),
    what it lacks and what would fit it at `context` (default: the pick's)."""
    context = context or pick.est.context
    better = pick.quality + threshold
    pick_has, pick_card = search.score(pick.spec)

    def beats(spec: ModelSpec, quant: str, quality: float) -> bool:
        if spec.name == pick.spec.name:
            return False
        has, card = search.score(spec)
        if pick_has and not has:  # no score on the task's benchmarks: not comparable
            return False
        if quality > better:
            return True
        return (
            tiered
            and has
            and policy.tier(spec) > policy.tier(pick.spec)
            and card > pick_card
            and quality > pick.quality
            and quality_bits(quant) >= 4
        )

    slow = [
        c
        for c in ranked
        if beats(c.spec, c.est.quant, c.quality) and (c.speed is None or c.speed < floor)
    ]
    if slow:
        c = max(slow, key=lambda x: (x.speed or 0.0, x.quality))
        speed = f"about {c.speed:.0f} tokens/s" if c.speed is not None else "at an unknown speed"
        return (
            f"{c.spec.display_name} {c.est.quant} scores {c.quality:.1f} (vs {pick.quality:.1f}) "
            f"and fits, but runs {speed}, below the {floor:g} tokens/s floor; "
            f"--min-speed {max(0, int(c.speed or 0)):d} would take it"
        )
    pool = search.pool_bytes(allow_offload)
    missed = [m for m in misses if beats(m.spec, m.quant, m.quality)]
    if not missed:
        return None

    def short(m: Miss) -> int:
        if m.fit is not None:
            return m.fit.missing_bytes
        artifact = m.spec.artifact(m.quant, adapter(search.runtime).format)
        return (artifact.text_bytes if artifact else 0) - pool

    m = min(missed, key=lambda x: (short(x), -x.quality))
    if m.est is None:  # pruned without an estimate: estimate its least demanding variant
        kv, text_only = policy.variants(
            search.task,
            search.kv_types,
            search.options.kv_cache,
            search.options.text_only,
            adapter(search.runtime).drops_vision,
        )[-1]
        cfg = search.config(m.spec, m.quant, kv, text_only)
        placed, est = search.place(cfg, context, allow_offload)
        m = Miss(
            m.spec,
            m.quant,
            m.quality,
            placed,
            est,
            check_fit(est, search.machine, search.options.margin),
        )
    assert m.est is not None and m.fit is not None and m.cfg is not None
    where = "GPU memory" if m.est.gpu_bytes else "RAM"
    line = (
        f"{m.spec.display_name} {m.quant} would score {m.quality:.1f} (vs {pick.quality:.1f}) "
        f"but needs {m.fit.missing_bytes / GiB:.1f} GiB more {where} at "
        f"{format_context(m.est.context)} (KV {m.est.kv_cache}"
        + (", text only" if m.est.text_only else "")
        + ")"
    )
    fixes = []
    ctx = search.max_context(m.cfg)
    if ctx is not None and ctx >= MIN_USEFUL_CONTEXT:
        fixes.append(f"so would --context {ctx}")
    if adapter(search.runtime).gguf and search.machine.gpus and not allow_offload:
        placed, est = search.place(m.cfg, m.est.context, True)
        if check_fit(est, search.machine, search.options.margin).fits:
            tps, _ = search.speed(search.finished(est))
            speed = f"about {tps:.0f} tokens/s" if tps is not None else "an unknown speed"
            fixes.append(f"with part of it in RAM (--allow-offload) it would run {speed}")
    return line + ("; " + ", ".join(fixes) if fixes else "")


def runtime_reason(machine: Machine, rt: str) -> str:
    """Why this runtime: the one found installed, or what people with this hardware use."""
    if rt in machine.runtimes:
        return f"{rt} is installed here"
    if machine.runtimes:
        found = ", ".join(sorted(machine.runtimes))
        return f"installed here: {found} (the usual runtime for this hardware is not)"
    if rt == VLLM:
        return "datacenter GPUs or a multi-GPU server (none installed here)"
    if runtimes.is_apple(machine):
        if rt == MLX:
            return "Apple Silicon: most Mac users run MLX conversions with mlx-lm (none here)"
        return "Apple Silicon runs GGUF builds on Metal (none installed here)"
    return "a desktop GPU or CPU (none installed here)"


def context_note(task: str) -> str:
    tool = policy.TOOL_CONTEXT.get(task)
    why = (
        f"; at least {format_context(tool)} for {task} (Ollama's advice for agents and coding "
        "tools)"
        if tool
        else ""
    )
    return (
        f"context: {format_context(policy.CARD_CONTEXT)} where it fits without a smaller model "
        f"or precision (the model cards advise it for thinking){why}, else the largest above "
        f"{format_context(policy.THINKING_CONTEXT)}; pass --context to choose"
    )


SHRUNK_WARNING = (
    "nothing fits at {target} tokens: contexts were lowered to fit; a thinking model may be cut "
    "off before it answers"
)
OFFLOAD_WARNING = (
    "nothing fits the GPU whole: these picks keep part of the weights in RAM, which is much slower"
)
EXPERTS_NOTE = (
    "MoE expert offload: the routed experts of some layers stay in RAM (llama.cpp --n-cpu-moe), "
    "the rest on the GPU; searched by default because this pick keeps the speed floor"
)
UNKNOWN_SPEED_WARNING = (
    "decode speed unknown (a memory bandwidth is unknown): picks are ranked by quality alone; "
    "give --gpu from the catalog, --gpu-bandwidth or --ram-bandwidth"
)


def slow_warning(speed: float, floor: float, task: str) -> str:
    return (
        f"the pick runs about {speed:.0f} tokens/s, below the {floor:g} tokens/s floor for "
        f"{task}: nothing faster fits"
    )


def newer_note(newer: ModelSpec, top: ModelSpec) -> str:
    return (
        f"{newer.display_name} (released {newer.released}) has the same architecture and "
        f"memory as {top.display_name}: --family {newer.family}"
    )


def closest_advice(est: Estimate, missing: int, machine: Machine, runtime: str) -> str:
    where = "GPU memory" if est.gpu_bytes else "RAM"
    advice = f"{est.model} at {est.quant} needs {missing / GiB:.1f} GiB more {where}"
    if est.gpu_bytes and not adapter(runtime).gguf:
        advice += "; or try --runtime llama.cpp, whose GGUF quantizations are smaller"
    elif not machine.has_gpu:
        advice += "; a GPU, more RAM or a shorter --context would help"
    return advice


def reasons(c: Candidate, search: Search, loss: Loss) -> list[str]:
    """Why this pick: its score and what reduced it, the memory it needs, its speed."""
    e = c.est
    kv_loss = policy.kv_quality_loss(e.kv_cache)
    lossy = "".join(
        [
            f", less {loss.value * 100:.2g}% for {e.quant}" if loss.value else "",
            f" ({loss.note})" if loss.note else "",
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
    scored = (
        f"{search.task} score {c.quality:.1f} ({c.spec.display_name} model-card benchmarks"
        if c.has_task
        else f"chat score {c.quality:.1f} ({c.spec.display_name}'s card reports none of the "
        f"{search.task} benchmarks"
    )
    out = [f"{scored}{lossy})", "; ".join(need)]
    if c.speed is not None:
        how = (
            "memory-bandwidth estimate"
            if c.speed_source == "estimated"
            else f"assuming {policy.ASSUMED_RAM_BANDWIDTH / 1e9:.1f} GB/s RAM; "
            "--ram-bandwidth to set it"
        )
        empty = empty_context_speed(c, search)
        at = (
            f" at a full {format_context(e.context)} context, about {empty:.0f} at an empty one"
            if empty is not None and round(empty) > round(c.speed)
            else ""
        )
        out.append(f"about {c.speed:.0f} tokens/s decode{at} ({how})")
    else:
        out.append("decode speed unknown (a memory bandwidth is unknown)")
    if e.layout.kind == "offload" and e.layout.cpu_moe_layers:
        out.append(
            f"routed experts of {e.layout.cpu_moe_layers} layers in RAM (llama.cpp "
            f"--n-cpu-moe {e.layout.cpu_moe_layers}); the rest on the GPU"
        )
    if e.parallel > 1:
        out.append(
            f"{c.concurrency} users at once, about {c.aggregate or 0:.0f} tokens/s in all "
            "(per-user speed x users, memory-bound decode)"
        )
    if search.task == "agent" and e.runtime == OLLAMA:
        out.append(
            "tools: Ollama has no server flag for tool calls; the client sends them in the "
            "'tools' field of /api/chat or of the OpenAI-compatible /v1/chat/completions "
            "(docs.ollama.com/capabilities/tool-calling)"
        )
    return out


def empty_context_speed(c: Candidate, search: Search) -> float | None:
    """Decode speed of the same layout before the KV cache fills: the model's estimate with
    no KV bytes read per token (the full-context figure reads all of them)."""
    parts = [
        p.model_copy(update={"read_per_token_bytes": 0}) if p.part == "kv_cache" else p
        for p in c.est.parts
    ]
    est = c.est.model_copy(update={"parts": parts, "tokens_per_second": None})
    return search.speed(search.finished(est))[0]


def pick_warnings(c: Candidate, search: Search, floor: float) -> list[str]:
    e = c.est
    out = []
    if c.speed is None or c.speed < floor:
        out.append(
            f"below the {floor:g} tokens/s usable-speed floor"
            if c.speed is not None
            else "speed unknown: not counted as reaching the usable-speed floor"
        )
    seqs = c.max_num_seqs
    if seqs is not None and seqs < e.parallel:
        out.append(
            f"the memory left for KV blocks holds {seqs} sequences of "
            f"{format_context(e.context)}, fewer than --parallel {e.parallel}"
        )
    if speed.fp8_weight_only(e, search.machine):
        out.append(
            "FP8 weights on a GPU without FP8 units (compute capability < 8.9): vLLM runs them "
            "weight-only (W8A16, FP8 Marlin), slower than this estimate, above all in prefill "
            "(docs.vllm.ai features/quantization/fp8)"
        )
    if e.runtime == VLLM and e.quant == "bf16" and policy.lacks_bf16(search.machine):
        out.append(
            "BF16 weights on a GPU below compute capability 8.0: vLLM refuses them unless "
            "started with --dtype half (docs.vllm.ai, engine arguments --dtype)"
        )
    if e.runtime == VLLM and e.kv_cache == "fp8":
        out.append(
            "FP8 KV cache on this hybrid model: reports of corrupted output (vLLM #42179) and of "
            "little memory gain (vLLM #55196); --kv-cache bf16 is the safe choice"
        )
    return out


def llamacpp_experts_hint(search: Search, pick: Candidate, floor: float) -> str | None:
    """On Ollama (whose scheduler splits whole layers): the best MoE model that llama.cpp would
    run with its routed experts in RAM (--n-cpu-moe) at or above the floor, when it scores
    more than the pick."""
    if search.runtime != OLLAMA or not search.machine.gpus:
        return None
    lcpp = dataclasses.replace(
        search, runtime=LLAMACPP, configs={}, moe_offload=False, fp8_first=False, quant=None
    )
    text_only = search.options.text_only or search.task in ("agent", "code")
    best: tuple[float, str] | None = None
    for spec in search.table.models:
        if not spec.is_moe or (search.only is not None and spec.name not in search.only):
            continue
        quant = "q4_k_m"
        if spec.artifact(quant, "gguf") is None:
            continue
        has, card = search.score(spec)
        _, est = lcpp.place(lcpp.config(spec, quant, "f16", text_only), 32768, True)
        if not est.layout.cpu_moe_layers:
            continue
        if not check_fit(est, search.machine, search.options.margin).fits:
            continue
        tps, _ = lcpp.speed(lcpp.finished(est))
        q = card * (1 - lcpp.weight_loss(spec, quant))
        if tps is None or tps < floor or not has or q <= pick.quality:
            continue
        line = (
            f"with llama.cpp, {spec.display_name} {quant} keeps the routed experts of "
            f"{est.layout.cpu_moe_layers} layers in RAM (--n-cpu-moe) and runs about {tps:.0f} "
            f"tokens/s, scoring {q:.1f} (vs {pick.quality:.1f}): --runtime llama.cpp"
        )
        if best is None or q > best[0]:
            best = (q, line)
    return best[1] if best else None


def benchmarks_note(search: Search, compared: list[ModelSpec]) -> list[str]:
    """What the task scores are means over when the cards compared do not all report the task's
    benchmarks (`search.shared_benchmarks`), and which models have no task score at all."""
    task = search.task
    full = policy.TASK_BENCHMARKS[task]
    rated = [(m.display_name, m.quality.scores) for m in compared if m.quality]
    with_task = [(n, s) for n, s in rated if any(b in s for b in full)]
    out = []
    if search.benchmarks and tuple(search.benchmarks) != full:
        lacking = [n for n, s in with_task if not all(b in s for b in full)]
        left = ", ".join(b for b in full if b not in search.benchmarks)
        out.append(
            f"{task} scores are means over the benchmarks every card compared reports "
            f"({', '.join(search.benchmarks)}); left out: {left} (not on the cards of "
            f"{', '.join(lacking)})"
        )
    without = [m.display_name for m in compared if not search.score(m)[0]]
    if without and with_task:
        out.append(
            f"{', '.join(without)}: no {task} benchmark ({', '.join(full)}) on the card or in "
            f"the data, so ranked after every model that has {task} scores"
        )
    return out
