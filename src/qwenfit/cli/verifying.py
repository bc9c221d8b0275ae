"""`qwenfit verify`: the thin command over `qwenfit.verify` (reading, estimating, printing)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from qwenfit.adapters import LLAMACPP, OLLAMA, VLLM
from qwenfit.cli.options import ExitCode, emit, json_option, request_values, settings_options

if TYPE_CHECKING:
    from qwenfit.verify import Verification

MAX_LOG_BYTES = 256 << 20  # a verbose log of a long-running server; the buffer lines come first


@click.command()
@click.option(
    "--runtime",
    type=click.Choice([LLAMACPP, OLLAMA, VLLM]),
    default=LLAMACPP,
    show_default=True,
    help="The runtime that is running.",
)
@click.option("--url", help="Its local address (default: the runtime's usual port on 127.0.0.1).")
@click.option(
    "--log",
    "log_file",
    type=click.Path(dir_okay=False),
    help="llama-server's log (started with -v): every buffer it sized, part by part.",
)
@click.option("--model", help="The spec-table model, when the runtime's name does not say.")
@click.option("--quant", help="The precision, when the runtime's file name does not say.")
@click.option(
    "--tolerance",
    type=click.FloatRange(0, 100),
    default=3.0,
    show_default=True,
    help="Percent above the estimate still accepted.",
)
@click.option("--bench", is_flag=True, help="Also time one short generation (tok/s, TTFT).")
@settings_options("probe")
@json_option
@click.pass_context
def verify(
    ctx: click.Context,
    runtime: str,
    url: str | None,
    log_file: str | None,
    model: str | None,
    quant: str | None,
    tolerance: float,
    bench: bool,
    values: dict[str, Any],
    as_json: bool,
) -> ExitCode:
    """A running runtime's own figures against qwenfit's estimate for what it loaded.

    Exit 0 within the tolerance, 3 when the runtime uses more than estimated, 1 when it cannot
    be reached. Only this machine's loopback address is contacted.
    """
    from qwenfit.inputs import read_bytes
    from qwenfit.serve.service import Service, document
    from qwenfit.specs import load_specs
    from qwenfit.verify import DEFAULT_URLS, device_bytes, parse, read_runtime, time_generation
    from qwenfit.verify import verify as run_verify

    log = None
    if log_file:
        raw = read_bytes(log_file, what="llama-server log", max_bytes=MAX_LOG_BYTES)
        log = parse(raw.decode(errors="replace").splitlines())
    observed = read_runtime(runtime, url or DEFAULT_URLS[runtime], log)
    table = load_specs(ctx.find_root().params.get("specs"))
    machine = Service(table=table).machine(request_values("probe", values))
    observed.device_bytes = observed.device_bytes if runtime == OLLAMA else device_bytes(runtime)
    timed = time_generation(observed) if bench else None
    result = run_verify(
        observed,
        table=table,
        model=model,
        quant=quant,
        machine=machine,
        tolerance_pct=tolerance,
        bench=timed,
    )
    if as_json:
        emit(document("verify", result))
    else:
        click.echo(render(result))
    return ExitCode.DOES_NOT_FIT if result.verdict == "over" else ExitCode.OK


def render(v: Verification) -> str:
    o, e = v.observed, v.estimate
    lines = [
        f"{o.runtime} at {o.url}: {o.model_ref or '?'}",
        f"  estimated as {e.model} {e.quant}, {e.context} tokens x {e.parallel} slot(s), "
        f"KV {e.kv_cache}"
        + (f", ubatch {e.ubatch}" if e.ubatch else "")
        + (f", llama.cpp build {e.llama_cpp_build}" if e.llama_cpp_build else ""),
    ]
    if v.rows:
        lines.append(f"  {'part':<26}{'estimated':>14}{'measured':>14}{'delta':>9}")
        for r in v.rows:
            tokens = r.part == "kv tokens"
            flag = "  over" if r.over else ""
            lines.append(
                f"  {r.part:<26}{_amount(r.estimated_bytes, tokens):>14}"
                f"{_amount(r.measured_bytes, tokens):>14}{r.delta_pct:>+8.2f}%{flag}"
            )
    if v.bench is not None:
        b = v.bench
        tps = f"{b.tokens_per_second:.1f}" if b.tokens_per_second else "?"
        est_tps = f"{e.tokens_per_second:.1f} estimated" if e.tokens_per_second else "no estimate"
        lines.append(f"  decode: {tps} tok/s measured, {est_tps} ({b.source})")
        ttft = f"{b.time_to_first_token_s:.2f} s" if b.time_to_first_token_s else "?"
        est_ttft = (
            f"{e.time_to_first_token_s:.2f} s estimated"
            if e.time_to_first_token_s
            else "no estimate"
        )
        lines.append(f"  time to first token: {ttft} measured, {est_ttft}")
    lines += [f"  note: {n}" for n in v.notes]
    verdict = {
        "ok": f"within {v.tolerance_pct:g} % of the estimate",
        "over": f"uses more than estimated (beyond {v.tolerance_pct:g} %)",
        "unmeasured": "the runtime reported no sizes to compare",
    }[v.verdict]
    lines.append(f"verdict: {verdict}")
    return "\n".join(lines)


def _amount(value: int, tokens: bool) -> str:
    return f"{value:,} tok" if tokens else f"{value / 2**20:,.2f} MiB"
