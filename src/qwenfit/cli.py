"""The `qwenfit` command: a thin click layer over the library.

Options are parsed here, the work is done by the library, results are printed as text or as the
pydantic models serialised to JSON. Exit codes: 0 ok / fits, 1 error, 2 usage, 3 does not fit.
Heavy modules are imported inside the commands so `qwenfit --help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

if TYPE_CHECKING:
    from qwenfit.estimator import FlashAttn
    from qwenfit.hardware import Machine
    from qwenfit.recommender import Task
    from qwenfit.specs import ModelSpec, SpecTable

# pydantic looks for plugins through importlib.metadata entry points on first use, which costs
# tens of milliseconds per run; the CLI uses none.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

EXIT_CODES = """\b
Exit codes:
  0  success; for check: the configuration fits
  1  error (bad spec table, unreadable file, probe failure)
  2  usage error (bad option value, unknown model, unsupported precision)
  3  does not fit (check), or nothing fits (recommend)
"""


class DoesNotFit(click.ClickException):
    exit_code = 3


class BadValue(click.ClickException):
    """A value click accepted but qwenfit did not: still a usage error (exit 2)."""

    exit_code = 2


def _fail(e: Exception) -> click.ClickException:
    from qwenfit.errors import NoFitError, UsageError

    if isinstance(e, UsageError):
        return BadValue(str(e))
    if isinstance(e, NoFitError):
        return DoesNotFit(str(e))
    return click.ClickException(str(e))


def _run(fn: Callable[[], T]) -> T:
    from qwenfit.errors import QwenfitError

    try:
        return fn()
    except QwenfitError as e:
        raise _fail(e) from None


def _emit(payload: dict[str, Any]) -> None:
    click.echo(json.dumps(payload, indent=2))


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(f)


def hardware_options(f: F) -> F:
    options = [
        click.option(
            "--gpu",
            envvar="QWENFIT_GPU",
            help='Plan for a GPU from the catalog, e.g. "RTX 4090" or "2x H100".',
        ),
        click.option(
            "--vram",
            envvar="QWENFIT_VRAM",
            help="Plan for a GPU with this much free memory, e.g. 24GB (0: no GPU).",
        ),
        click.option(
            "--ram", envvar="QWENFIT_RAM", help="Plan for this much usable RAM, e.g. 64GB."
        ),
        click.option(
            "--ram-bandwidth",
            "ram_bandwidth",
            envvar="QWENFIT_RAM_BANDWIDTH",
            help="RAM bandwidth for CPU / offload speed, e.g. 80GB/s (probed if unset).",
        ),
        click.option(
            "--machine",
            "machine_file",
            type=click.Path(dir_okay=False),
            help="A machine saved with 'qwenfit probe --json'.",
        ),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def config_options(f: F) -> F:
    options = [
        click.option(
            "--runtime",
            envvar="QWENFIT_RUNTIME",
            help="llama.cpp, ollama, vllm or transformers (default: what suits the machine).",
        ),
        click.option("--quant", help="Precision, e.g. q4_k_m, q8_0, bf16, fp8, gptq-int4."),
        click.option("--context", help="Tokens per sequence: 32768, 32k, 128K, 256k."),
        click.option("--kv-cache", "kv_cache", help="KV cache type: f16, bf16, q8_0, q4_0, fp8."),
        click.option(
            "--parallel",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Sequences served at once (slots / max-num-seqs).",
        ),
        click.option("--ubatch", type=click.IntRange(1, 65536), help="llama.cpp micro-batch."),
        click.option(
            "--flash-attn",
            "flash_attn",
            type=click.Choice(["auto", "on", "off"]),
            default="auto",
            show_default=True,
            help="llama.cpp flash attention.",
        ),
        click.option("--text-only", is_flag=True, help="Leave the vision tower out."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def _machine(
    gpu: str | None,
    vram: str | None,
    ram: str | None,
    ram_bandwidth: str | None,
    machine_file: str | None,
) -> Machine:
    from qwenfit.machines import load_machine, with_overrides

    if machine_file:
        base = load_machine(machine_file)
    elif (gpu or vram is not None) and ram:
        base = None  # fully hypothetical: no need to probe
    else:
        from qwenfit.probing import probe

        base = probe()
    machine = with_overrides(base, gpu=gpu, vram=vram, ram=ram, ram_bandwidth=ram_bandwidth)
    for w in machine.warnings:
        click.echo(f"warning: {w}", err=True)
    return machine


def _table(ctx: click.Context) -> SpecTable:
    from qwenfit.specs import load_specs

    path = ctx.find_root().params.get("specs")
    return _run(lambda: load_specs(path))


def _fa(value: str) -> FlashAttn:
    return cast("FlashAttn", value)


def _context(value: str | None) -> int | None:
    from qwenfit.units import parse_context

    return None if value is None else _run(lambda: parse_context(value))


@click.group(epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="qwenfit")
@click.option(
    "--specs",
    envvar="QWENFIT_SPECS",
    type=click.Path(dir_okay=False),
    help="Use a reviewed copy of the spec table instead of the shipped one.",
)
def main(specs: str | None) -> None:
    """Which Qwen3.5 model this machine should run, and how.

    \b
    qwenfit recommend                 the best model, precision and context here
    qwenfit estimate 9b --context 128k --runtime llama.cpp
    qwenfit check 27b --quant q4_k_m --vram 24GB   (exit 3 if it does not fit)
    qwenfit probe --json              what qwenfit sees of this machine
    """


@main.command()
@hardware_options
@json_option
def probe(
    gpu: str | None,
    vram: str | None,
    ram: str | None,
    ram_bandwidth: str | None,
    machine_file: str | None,
    as_json: bool,
) -> None:
    """Show the GPUs, RAM and runtimes qwenfit sees (or the hypothetical machine)."""
    m = _run(lambda: _machine(gpu, vram, ram, ram_bandwidth, machine_file))
    if as_json:
        _emit({"schema_version": 1, "machine": m.model_dump(mode="json")})
    else:
        from qwenfit import render

        click.echo(render.machine(m))


@main.command()
@json_option
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """List the Qwen3.5 models of the spec table with their sizes and precisions."""
    from qwenfit import render

    table = _table(ctx)
    if as_json:
        _emit({"schema_version": 1, "models": [m.model_dump(mode="json") for m in table.models]})
    else:
        click.echo(render.models(table))


def checkpoint_options(f: F) -> F:
    options = [
        click.option(
            "--online",
            is_flag=True,
            envvar="QWENFIT_ONLINE",
            help="Allow reading a Hugging Face repo id from the Hub (headers only).",
        ),
        click.option(
            "--mmproj",
            type=click.Path(dir_okay=False, exists=True),
            help="The vision projector GGUF that goes with a local GGUF file.",
        ),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def _resolve(
    table: SpecTable, model: str, online: bool, mmproj: str | None
) -> tuple[SpecTable, ModelSpec]:
    """A table name, a local folder or GGUF, or a Hub repo id -> (table with it, its spec)."""
    from contextlib import nullcontext

    from qwenfit.checkpoints import resolve_model
    from qwenfit.progress import spinner

    with spinner(f"reading {model} from the Hugging Face Hub") if online else nullcontext():
        return _run(lambda: resolve_model(model, table, online=online, mmproj=mmproj))


def nodes_option(f: F) -> F:
    return click.option(
        "--nodes",
        type=click.IntRange(1, 1024),
        default=1,
        show_default=True,
        help="Machines like this one, for vLLM across nodes (Ray).",
    )(f)


def offload_option(f: F) -> F:
    return click.option(
        "--allow-offload",
        is_flag=True,
        help="Accept experts or layers in RAM (llama.cpp, Ollama): slower.",
    )(f)


@main.command()
@click.argument("model")
@config_options
@hardware_options
@checkpoint_options
@nodes_option
@json_option
@click.pass_context
def estimate(
    ctx: click.Context,
    model: str,
    runtime: str | None,
    quant: str | None,
    context: str | None,
    kv_cache: str | None,
    parallel: int,
    ubatch: int | None,
    flash_attn: str,
    text_only: bool,
    gpu: str | None,
    vram: str | None,
    ram: str | None,
    ram_bandwidth: str | None,
    machine_file: str | None,
    nodes: int,
    online: bool,
    mmproj: str | None,
    as_json: bool,
) -> None:
    """Memory MODEL will take, part by part, in the chosen runtime.

    On a machine, the model is laid out as the runtime would: one GPU, several, or (llama.cpp,
    Ollama) experts or layers in RAM when the GPUs are too small.
    """
    from qwenfit import render
    from qwenfit.estimator import estimate as run_estimate

    table = _table(ctx)
    tokens = _context(context)
    machine = _run(lambda: _machine(gpu, vram, ram, ram_bandwidth, machine_file))
    table, spec = _resolve(table, model, online, mmproj)
    est = _run(
        lambda: run_estimate(
            spec,
            runtime=runtime,
            quant=quant,
            context=tokens,
            kv_cache=kv_cache,
            parallel=parallel,
            ubatch=ubatch,
            flash_attn=_fa(flash_attn),
            text_only=text_only,
            machine=machine,
            nodes=nodes,
            table=table,
        )
    )
    if as_json:
        _emit({"schema_version": 1, "estimate": est.model_dump(mode="json")})
    else:
        click.echo(render.estimate(est))


@main.command()
@click.argument("model")
@config_options
@hardware_options
@checkpoint_options
@click.option(
    "--margin",
    default="1GiB",
    show_default=True,
    help="Memory to keep free per pool: a size (1GiB) or a percentage (10%).",
)
@offload_option
@nodes_option
@json_option
@click.pass_context
def check(
    ctx: click.Context,
    model: str,
    runtime: str | None,
    quant: str | None,
    context: str | None,
    kv_cache: str | None,
    parallel: int,
    ubatch: int | None,
    flash_attn: str,
    text_only: bool,
    gpu: str | None,
    vram: str | None,
    ram: str | None,
    ram_bandwidth: str | None,
    machine_file: str | None,
    margin: str,
    allow_offload: bool,
    nodes: int,
    online: bool,
    mmproj: str | None,
    as_json: bool,
) -> None:
    """Does MODEL fit this machine as configured? Exit 0 if it fits, 3 if not.

    By default the whole model must fit the GPU(s); --allow-offload also accepts llama.cpp's
    experts or layers in RAM.
    """
    from qwenfit import render
    from qwenfit.preflight import check as run_check

    table = _table(ctx)
    tokens = _context(context)
    machine = _run(lambda: _machine(gpu, vram, ram, ram_bandwidth, machine_file))
    margin_bytes = _run(lambda: _margin(margin, machine))
    table, spec = _resolve(table, model, online, mmproj)
    result = _run(
        lambda: run_check(
            spec,
            machine,
            runtime=runtime,
            quant=quant,
            context=tokens,
            kv_cache=kv_cache,
            parallel=parallel,
            ubatch=ubatch,
            flash_attn=_fa(flash_attn),
            text_only=text_only,
            allow_offload=allow_offload,
            nodes=nodes,
            margin=margin_bytes,
            table=table,
        )
    )
    if as_json:
        _emit({"schema_version": 1, "check": result.model_dump(mode="json")})
    else:
        click.echo(render.check(result))
    if not result.fits:
        sys.exit(3)


def _margin(text: str, machine: Machine) -> int:
    from qwenfit.errors import UsageError
    from qwenfit.layout import best_gpu
    from qwenfit.units import parse_size

    if text.strip().endswith("%"):
        try:
            pct = float(text.strip()[:-1])
        except ValueError:
            raise UsageError(
                f"invalid --margin {text!r}: use a size (1GiB) or a percentage (10%)"
            ) from None
        if not 0 <= pct < 100:
            raise UsageError(f"invalid --margin {text!r}: the percentage must be in [0, 100)")
        gpu = best_gpu(machine)
        pool = gpu.memory_total_bytes if gpu else machine.ram_usable_bytes
        return int(pool * pct / 100)
    if text.strip() == "0":
        return 0
    return parse_size(text, what="--margin")


@main.command()
@click.option(
    "--runtime",
    envvar="QWENFIT_RUNTIME",
    help="llama.cpp, ollama, vllm or transformers (default: what suits the machine).",
)
@click.option("--context", help="Tokens per sequence (default 32k; max_context is reported).")
@click.option("--kv-cache", "kv_cache", help="KV cache type: f16, bf16, q8_0, q4_0, fp8.")
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--flash-attn",
    "flash_attn",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
)
@click.option("--text-only", is_flag=True, help="Leave the vision tower out.")
@click.option(
    "--task",
    type=click.Choice(["chat", "agent", "code", "vision"]),
    default="chat",
    show_default=True,
    help="Which benchmarks rank the models.",
)
@click.option("--min-speed", type=click.FloatRange(min=0), help="Minimum decode tokens/s.")
@click.option(
    "-n",
    "limit",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="How many picks to show (the best and its alternatives).",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    help="Only consider these models: names, local checkpoints or Hub ids (repeatable).",
)
@hardware_options
@checkpoint_options
@offload_option
@nodes_option
@json_option
@click.pass_context
def recommend(
    ctx: click.Context,
    runtime: str | None,
    context: str | None,
    kv_cache: str | None,
    parallel: int,
    flash_attn: str,
    text_only: bool,
    task: str,
    min_speed: float | None,
    limit: int,
    gpu: str | None,
    vram: str | None,
    ram: str | None,
    ram_bandwidth: str | None,
    machine_file: str | None,
    allow_offload: bool,
    nodes: int,
    models: tuple[str, ...],
    online: bool,
    mmproj: str | None,
    as_json: bool,
) -> None:
    """The best Qwen3.5 model, precision and context for this machine, and how to start it."""
    from qwenfit import render
    from qwenfit.recommender import recommend as run_recommend

    table = _table(ctx)
    tokens = _context(context)
    machine = _run(lambda: _machine(gpu, vram, ram, ram_bandwidth, machine_file))
    only = []
    for ref in models:
        table, spec = _resolve(table, ref, online, mmproj)
        only.append(spec.name)
    result = _run(
        lambda: run_recommend(
            machine,
            models=only or None,
            runtime=runtime,
            context=tokens,
            task=cast("Task", task),
            text_only=text_only,
            kv_cache=kv_cache,
            parallel=parallel,
            flash_attn=_fa(flash_attn),
            min_speed=min_speed,
            allow_offload=allow_offload,
            nodes=nodes,
            limit=limit,
            table=table,
        )
    )
    if as_json:
        _emit(result.model_dump(mode="json"))  # machine, recommendations, ... at the top
    else:
        click.echo(render.recommendation(result))
    if not result.recommendations:
        sys.exit(3)


@main.command()
@click.argument("model", required=False)
@config_options
@hardware_options
@checkpoint_options
@nodes_option
@json_option
@click.pass_context
def launch(
    ctx: click.Context,
    model: str | None,
    runtime: str | None,
    quant: str | None,
    context: str | None,
    kv_cache: str | None,
    parallel: int,
    ubatch: int | None,
    flash_attn: str,
    text_only: bool,
    gpu: str | None,
    vram: str | None,
    ram: str | None,
    ram_bandwidth: str | None,
    machine_file: str | None,
    online: bool,
    mmproj: str | None,
    nodes: int,
    as_json: bool,
) -> None:
    """The command that starts MODEL (default: the top recommendation). Runs nothing."""
    from qwenfit import render
    from qwenfit.estimator import estimate as run_estimate
    from qwenfit.launch import launch_command
    from qwenfit.recommender import recommend as run_recommend

    table = _table(ctx)
    tokens = _context(context)
    machine = _run(lambda: _machine(gpu, vram, ram, ram_bandwidth, machine_file))
    if model is None:
        result = _run(
            lambda: run_recommend(
                machine,
                runtime=runtime,
                context=tokens,
                text_only=text_only,
                kv_cache=kv_cache,
                parallel=parallel,
                flash_attn=_fa(flash_attn),
                limit=1,
                nodes=nodes,
                table=table,
            )
        )
        if not result.recommendations:
            raise DoesNotFit("nothing fits this machine; see 'qwenfit recommend'")
        cmd = result.recommendations[0].launch
    else:
        table, spec = _resolve(table, model, online, mmproj)
        est = _run(
            lambda: run_estimate(
                spec,
                runtime=runtime,
                quant=quant,
                context=tokens,
                kv_cache=kv_cache,
                parallel=parallel,
                ubatch=ubatch,
                flash_attn=_fa(flash_attn),
                text_only=text_only,
                machine=machine,
                nodes=nodes,
                table=table,
            )
        )
        cmd = launch_command(est, table=table)
    if as_json:
        _emit({"schema_version": 1, "launch": cmd.model_dump(mode="json")})
    else:
        click.echo(render.launch(cmd))


@main.group()
def specs() -> None:
    """The spec table: see where a fresh read of the Hub differs from it."""


@specs.command()
@click.option(
    "--online",
    is_flag=True,
    envvar="QWENFIT_ONLINE",
    help="Required: this reads the official repos from the Hugging Face Hub.",
)
@click.pass_context
def refresh(ctx: click.Context, online: bool) -> None:
    """Print, as a unified diff, what the Hub says differs from the spec table.

    Nothing is changed: review the diff and apply it to data/model_specs.json by hand.
    """
    from qwenfit.hub import refresh_specs
    from qwenfit.progress import spinner

    table = _table(ctx)
    with spinner("reading the official Qwen3.5 repos"):
        diff = _run(lambda: refresh_specs(table, online=online))
    click.echo(diff or "the spec table matches the Hub", nl=not diff.endswith("\n"))


if __name__ == "__main__":  # pragma: no cover
    main()
