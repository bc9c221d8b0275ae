"""Plain-text views of the result records, for people. JSON output never goes through here."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from qwenfit.units import GB, GiB, format_bytes, format_context

if TYPE_CHECKING:
    from qwenfit.fit import CheckResult, Fit
    from qwenfit.hardware import Machine
    from qwenfit.launch import LaunchCommand
    from qwenfit.memory import Estimate, SweepResult
    from qwenfit.recommender import RecommendResult
    from qwenfit.specs import SpecTable


def _gib(n: int) -> str:
    return f"{n / GiB:8.2f}"


def machine(m: Machine) -> str:
    lines = [
        f"RAM   {format_bytes(m.ram_total_bytes)} total, {format_bytes(m.ram_available_bytes)} "
        f"available, {format_bytes(m.ram_usable_bytes)} usable"
    ]
    if m.cgroup_limit_bytes is not None:
        lines.append(f"      container limit {format_bytes(m.cgroup_limit_bytes)}")
    if m.cpu_logical:
        lines.append(f"CPU   {m.cpu_physical or '?'} cores, {m.cpu_logical} threads")
    if m.ram_bandwidth_bytes_per_s:
        note = f" ({m.ram_bandwidth_note})" if m.ram_bandwidth_note else ""
        lines.append(f"RAM bandwidth {m.ram_bandwidth_bytes_per_s / 1e9:.1f} GB/s{note}")
    elif m.source == "probe":
        lines.append(f"RAM bandwidth unknown ({m.ram_bandwidth_note or 'not measured'})")
    if not m.gpus:
        lines.append("GPU   none")
    for g in m.gpus:
        bw = f", {g.bandwidth_bytes_per_s / 1e9:.0f} GB/s" if g.bandwidth_bytes_per_s else ""
        lines.append(
            f"GPU {g.index} {g.name}: {format_bytes(g.memory_free_bytes)} free of "
            f"{format_bytes(g.memory_total_bytes)}{bw}"
        )
    found = ", ".join(f"{k} {v}" if v else k for k, v in sorted(m.runtimes.items()))
    lines.append(f"runtimes  {found or 'none found'}")
    lines += [f"warning: {w}" for w in m.warnings if w != m.ram_bandwidth_note]
    return "\n".join(lines)


def models(table: SpecTable) -> str:
    lines = [
        f"{'model':<20} {'params':>9} {'active':>8} {'context':>8}  precisions (GGUF text bytes)"
    ]
    for m in table.models:
        ggufs = ", ".join(
            f"{a.precision} {a.text_bytes / 1e9:.1f}G"
            for a in m.artifacts
            if a.format == "gguf" and a.precision in ("q4_k_m", "q8_0", "bf16")
        )
        others = sorted({a.precision for a in m.artifacts if a.format != "gguf"})
        lines.append(
            f"{m.name:<20} {m.params.total / 1e9:8.2f}B {m.params.text_active / 1e9:7.2f}B "
            f"{format_context(m.context.native):>8}  {ggufs}; also {', '.join(others)}"
        )
        if m.family != "qwen3.5":
            src = table.sources[m.architecture.source]
            lines.append(
                f"{'':<20} {m.family}, released {m.released}; source: {src.url or src.path}"
            )
    return "\n".join(lines)


def layout(e: Estimate) -> str:
    """One line on how the model is spread over devices."""
    lay = e.layout
    n = len(lay.devices)
    if lay.kind == "cpu":
        return "layout: CPU only, everything in RAM"
    if lay.kind == "offload" and lay.cpu_moe_layers:
        return (
            f"layout: GPU {lay.devices[0]}, with the routed experts of the first "
            f"{lay.cpu_moe_layers} layers in RAM"
        )
    if lay.kind == "offload":
        return f"layout: the last {lay.gpu_layers} layers on GPU {lay.devices[0]}, the rest in RAM"
    if lay.kind == "multi_node":
        return (
            f"layout: {lay.nodes} nodes x {n} GPUs: tensor parallel {lay.tensor_parallel} "
            f"within a node, pipeline parallel {lay.pipeline_parallel} across nodes"
        )
    if lay.tensor_parallel and lay.tensor_parallel > 1:
        return f"layout: tensor parallel over {n} GPUs ({', '.join(map(str, lay.devices))})"
    if lay.tensor_split:
        split = ", ".join(
            f"{c} on GPU {d}" for d, c in zip(lay.devices, lay.tensor_split, strict=True)
        )
        return f"layout: layers split over {n} GPUs ({split})"
    if lay.kind == "multi_gpu":
        return f"layout: spread over {n} GPUs"
    return f"layout: all on GPU {lay.devices[0]}" if lay.devices else "layout: one GPU"


def _where(devices: list[int | None]) -> str:
    if devices == [None]:
        return "ram"
    if len(devices) == 1:
        return f"gpu{devices[0]}"
    return f"{len(devices)} GPUs, each"


def needs(f: Fit) -> str:
    """GPU need and RAM need, each against its own budget (never one total for both)."""
    parts = []
    if f.gpu_need_bytes or f.gpu_budget_bytes:
        parts.append(
            f"GPU {f.gpu_need_bytes / GiB:.2f} GiB needed of {f.gpu_budget_bytes / GiB:.2f} GiB "
            "usable"
        )
    parts.append(
        f"RAM {f.ram_need_bytes / GiB:.2f} GiB needed of {f.ram_budget_bytes / GiB:.2f} GiB usable"
    )
    return "; ".join(parts)


def estimate(e: Estimate, machine: Machine | None = None, margin: int | None = None) -> str:
    """The estimate; given the machine it was laid out on, also whether it fits there."""
    text = _estimate(e)
    if machine is None:
        return text
    from qwenfit.fit import check_fit

    f = check_fit(e, machine) if margin is None else check_fit(e, machine, margin)
    verdict = "fits this machine" if f.fits else f"does not fit this machine: {f.reason}"
    return "\n".join([text, "", f"{verdict} ({needs(f)})"])


def _estimate(e: Estimate) -> str:
    head = (
        f"{e.model} on {e.runtime}, {e.quant}, context {e.context} tokens "
        f"({e.context_source}) x {e.parallel} sequence(s), KV {e.kv_cache}"
    )
    groups: dict[tuple[str, str, str, int], list[int | None]] = {}
    for p in e.parts:
        groups.setdefault((p.part, p.placement, p.detail, p.bytes), []).append(p.device)
    rows = [f"{'part':<13} {'GiB':>8}  {'where':<14} detail"]
    for (part, _, detail, size), devices in groups.items():
        rows.append(f"{part:<13} {_gib(size)}  {_where(devices):<14} {detail}")
    per_gpu = max(e.device_bytes.values(), default=0)
    gpus = f", {per_gpu / GiB:.2f} GiB on the fullest GPU" if len(e.device_bytes) > 1 else ""
    rows.append(
        f"{'total':<13} {_gib(e.total_bytes)}  GPU {e.gpu_bytes / GiB:.2f} GiB{gpus}, "
        f"RAM {e.ram_bytes / GiB:.2f} GiB"
    )
    if e.cache_limit_bytes:
        rows.append(
            f"{'':<13} {'':>8}  {e.load_bytes / GiB:.2f} GiB at load; host-RAM caches start "
            f"empty and may grow to {e.cache_limit_bytes / GiB:.2f} GiB (the limits above)"
        )
    speed = (
        [speed_line(e)]
        if e.tokens_per_second
        else [f"speed: not estimated: {e.speed_reason}"]
        if e.speed_reason
        else []
    )
    if e.tokens_per_second and e.speed_reason and not e.prefill_tokens_per_second:
        speed.append(f"prefill: not estimated: {e.speed_reason}")
    download = (
        [
            f"download: {'' if e.download_exact else 'about '}{e.download_bytes / GB:.2f} GB "
            f"({'published' if e.download_exact else 'computed'} file sizes)"
        ]
        if e.download_bytes is not None
        else []
    )
    return "\n".join(
        [head, layout(e), "", *rows, *speed, *download, *(f"note: {n}" for n in e.notes)]
    )


def speed_line(e: Estimate) -> str:
    """'speed: about N tokens/s decode at a full context (E empty), M tokens/s prefill (512-token
    prompt; TTFT X s for a P-token prompt)'."""
    line = f"speed: about {e.tokens_per_second:.0f} tokens/s decode at a full context"
    if e.decode_empty_tokens_per_second and e.decode_half_tokens_per_second:
        line += (
            f" ({e.decode_empty_tokens_per_second:.0f} empty, "
            f"{e.decode_half_tokens_per_second:.0f} half full)"
        )
    if e.prefill_tokens_per_second:
        line += (
            f", {e.prefill_tokens_per_second:.0f} tokens/s prefill of a "
            f"{e.prefill_prompt_tokens}-token prompt"
        )
        if e.time_to_first_token_s is not None:
            line += (
                f" (TTFT {e.time_to_first_token_s:.1f} s for a {e.ttft_prompt_tokens}-token prompt)"
            )
    if e.aggregate_tokens_per_second:
        line += (
            f"; {e.aggregate_tokens_per_second:.0f} tokens/s over {e.parallel} sequences "
            f"({e.aggregate_tokens_per_second / e.parallel:.0f} each)"
        )
    else:
        line += " (one sequence)" if not e.prefill_tokens_per_second else ""
    return line


def check(r: CheckResult) -> str:
    reason = r.disk.reason if r.fit.fits and r.disk is not None else r.fit.reason
    verdict = "fits" if r.fits else f"does not fit: {reason}"
    lines = [
        _estimate(r.estimate),
        "",
        *fit_lines(r),
        *disk_lines(r),
        f"verdict: {verdict} ({needs(r.fit)})",
    ]
    if r.nearest:
        n = r.nearest
        lines.append(
            f"nearest that fits: {n.model} {n.quant} at {n.context} tokens "
            f"({n.total_bytes / GiB:.2f} GiB; changed {n.change})"
        )
    return "\n".join(lines)


def fit_lines(r: CheckResult) -> list[str]:
    """Need against budget for each pool, with the margin and any --reserve."""
    out = []
    for d in r.fit.devices:
        name = "RAM" if d.device is None else f"GPU {d.device}"
        kept = f"{r.fit.margin_bytes / GiB:.2f} GiB margin"
        if d.reserved_bytes:
            kept += f", {d.reserved_bytes / GiB:.2f} GiB reserved"
        out.append(
            f"fit {name:<6} needs {d.need_bytes / GiB:7.2f} GiB of {d.budget_bytes / GiB:7.2f} GiB "
            f"({kept})"
        )
    return out


def disk_lines(r: CheckResult) -> list[str]:
    d = r.disk
    if d is None:
        return []
    where = d.folder or "the stated disk"
    approx = "" if d.download_exact else "about "
    time = f", {d.download_seconds / 60:.0f} min at the given speed" if d.download_seconds else ""
    verdict = "fits" if d.fits else f"short by {d.missing_bytes / GB:.2f} GB"
    return [
        f"fit disk   downloads {approx}{d.download_bytes / GB:.2f} GB to {where}, "
        f"{d.free_bytes / GB:.2f} GB free: {verdict}{time}"
    ]


def comment(text: str) -> str:
    """`text` as shell comment lines: every line of it starts with '# ', so a line break in a
    name cannot end the comment and start a command."""
    return "\n".join(f"# {line}" for line in text.splitlines() or [""])


def heredoc_delimiter(text: str) -> str:
    """A here-document delimiter that no line of `text` equals, so the text cannot end the
    here-document early (a file name holding a line break and 'EOF' would)."""
    lines = set(text.splitlines())
    delimiter, n = "QWENFIT_EOF", 0
    while delimiter in lines:
        n += 1
        delimiter = f"QWENFIT_EOF_{n}"
    return delimiter


def launch(cmd: LaunchCommand) -> str:
    """The launch steps as a POSIX shell script to paste: files as quoted here-documents, steps
    as quoted command lines, everything else as comments."""
    lines = []
    for f in cmd.files:
        body = f.text if f.text.endswith("\n") else f.text + "\n"
        delimiter = heredoc_delimiter(body)
        lines += [comment(f"write {f.path} ({f.purpose}):")]
        lines += [f"cat > {shlex.quote(f.path)} <<'{delimiter}'", body + delimiter]
    for s in cmd.steps:
        lines += [comment(s.purpose), s.shell]
    return "\n".join([*lines, *(comment(n) for n in cmd.notes)])


def recommendation(r: RecommendResult) -> str:
    if not r.recommendations:
        closest = [f"Closest: {r.closest.advice}."] if r.closest else []
        return "\n".join([f"Nothing fits this machine ({r.runtime}).", *closest, *r.notes])
    best = r.recommendations[0]
    lines = [
        f"Run {best.display_name} at {best.quant} with {best.runtime}, "
        f"context {format_context(best.context)} "
        f"(up to {format_context(best.max_context or best.context)} fits)."
    ]
    lines += [f"  - {x}" for x in best.reasons]
    lines += [f"  - gave up: {x}" for x in best.gave_up]
    lines += [f"  - warning: {x}" for x in best.warnings]
    if r.why_not_bigger:
        lines.append(f"  - why not bigger: {r.why_not_bigger}")
    lines += ["", launch(best.launch)]
    if len(r.recommendations) > 1:
        lines += ["", "Alternatives:"]
        for x in r.recommendations[1:]:
            tps = f", ~{x.tokens_per_second:.0f} tok/s" if x.tokens_per_second else ""
            e = x.estimate
            mem = f"GPU {e.gpu_bytes / GiB:.1f} GiB" if e.gpu_bytes else ""
            if e.ram_bytes:
                mem += (", " if mem else "") + f"RAM {e.ram_bytes / GiB:.1f} GiB"
            lines.append(
                f"  {x.rank}. {x.display_name} {x.quant}, KV {x.kv_cache}"
                f"{', text only' if x.text_only else ''}: score {x.quality_score:.1f}, "
                f"{mem}{tps}"
            )
    lines += ["", *(f"warning: {w}" for w in r.warnings), *(f"note: {n}" for n in r.notes)]
    return "\n".join(lines).rstrip()


def sweep(r: SweepResult) -> str:
    """Context x KV type table; the largest context that fits is marked per KV type."""
    head = f"{r.model} on {r.runtime}, {r.quant}, x {r.parallel} sequence(s)"
    if r.budget_bytes is not None:
        margin = r.margin_bytes / GiB
        head += f"; budget {r.budget_bytes / GiB:.2f} GiB (after a {margin:.2f} GiB margin)"
    lines = [
        head,
        f"{'context':>8} {'KV':<7} {'total GiB':>9} {'GPU GiB':>8} {'RAM GiB':>8} "
        f"{'tok/s':>6}  fits",
    ]
    for row in r.rows:
        tps = f"{row.tokens_per_second:6.0f}" if row.tokens_per_second else f"{'-':>6}"
        fits = (
            ""
            if row.fits is None
            else ("yes" if row.fits else f"no, short {(row.missing_bytes or 0) / GiB:.2f} GiB")
        )
        yarn = " (YaRN)" if row.yarn else ""
        lines.append(
            f"{format_context(row.context):>8} {row.kv_cache:<7} {row.total_bytes / GiB:9.2f} "
            f"{row.gpu_bytes / GiB:8.2f} {row.ram_bytes / GiB:8.2f} {tps}  {fits}{yarn}"
        )
    for kv, best in r.max_context.items():
        where = format_context(best) if best else "nothing"
        lines.append(f"largest context that fits with KV {kv}: {where}")
    return "\n".join(lines)
