"""Sentences about a pick: what it gave up to fit, and why the next better model is not it."""

from __future__ import annotations

from qwenfit.adapters import adapter
from qwenfit.fit.preflight import MIN_USEFUL_CONTEXT
from qwenfit.fit.verdict import check_fit
from qwenfit.recommender import policy
from qwenfit.recommender.search import Candidate, Miss, Search
from qwenfit.units import GiB, format_context


def gave_up(c: Candidate, first: policy.Variant, target: int, user_text_only: bool) -> list[str]:
    """What this pick traded away to fit, each as one phrase ("KV cache q8_0 to fit 128k")."""
    e = c.est
    at = format_context(e.context)
    out = []
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
) -> str | None:
    """One line: the nearest better model (beyond noise), what it lacks and what would fit it."""
    better = pick.quality + threshold
    slow = [
        c
        for c in ranked
        if c.quality > better
        and c.spec.name != pick.spec.name
        and (c.speed is None or c.speed < floor)
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
    missed = [m for m in misses if m.quality > better and m.spec.name != pick.spec.name]
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
        placed, est = search.place(cfg, pick.est.context, allow_offload)
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
