"""The `qwenfit` commands: each turns its options into one library call and prints the result.

Options and their types live in `cli.options`; exit codes come from `QwenfitGroup` (a returned
`ExitCode`, or the error table). Heavy modules are imported inside the commands so that
`qwenfit --help` and shell completion stay fast.

Over 400 lines because it holds one short function per command, each a single library call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import click

from qwenfit.cli.options import (
    EXIT_CODES_HELP,
    ExitCode,
    MachineArgs,
    QwenfitGroup,
    SpeedType,
    checkpoint_options,
    disk_options,
    emit,
    family_option,
    hardware_options,
    json_option,
    margin_option,
    nodes_option,
    offload_option,
    reserve_option,
    settings_options,
    sweep_options,
)

if TYPE_CHECKING:
    from qwenfit.fit.margin import Margin
    from qwenfit.launch.common import Task
    from qwenfit.specs.table import ModelSpec, SpecTable


def _table(ctx: click.Context) -> SpecTable:
    from qwenfit.specs.table import load_specs

    return load_specs(ctx.find_root().params.get("specs"))


def _resolve(
    table: SpecTable, model: str, online: bool, mmproj: str | None
) -> tuple[SpecTable, ModelSpec]:
    """A table name, a local folder or GGUF, or a Hub repo id -> (table with it, its spec)."""
    from contextlib import nullcontext

    from qwenfit.cli.progress import spinner
    from qwenfit.specs.checkpoints.resolve import resolve_model

    with spinner(f"reading {model} from the Hugging Face Hub") if online else nullcontext():
        return resolve_model(model, table, online=online, mmproj=mmproj)


@click.group(
    cls=QwenfitGroup,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
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
def probe(hardware: MachineArgs, as_json: bool) -> None:
    """Show the GPUs, RAM and runtimes qwenfit sees (or the hypothetical machine)."""
    m = hardware.machine()
    if as_json:
        emit({"schema_version": 1, "machine": m.model_dump(mode="json")})
    else:
        from qwenfit.cli import render

        click.echo(render.machine(m))


@main.command()
@family_option
@json_option
@click.pass_context
def models(ctx: click.Context, family: str, as_json: bool) -> None:
    """List the models of the spec table (one release line, or all) with sizes and sources."""
    from qwenfit.cli import render

    table = _table(ctx)
    table = table.model_copy(update={"models": table.family_models(family)})
    if as_json:
        emit({"schema_version": 1, "models": [m.model_dump(mode="json") for m in table.models]})
    else:
        click.echo(render.models(table))


@main.command()
@click.argument("model")
@settings_options()
@hardware_options
@reserve_option
@checkpoint_options
@nodes_option
@sweep_options
@json_option
@click.pass_context
def estimate(
    ctx: click.Context,
    model: str,
    settings: dict[str, Any],
    hardware: MachineArgs,
    nodes: int,
    online: bool,
    mmproj: str | None,
    sweep: bool,
    yarn: bool,
    plot_file: str | None,
    as_json: bool,
) -> None:
    """Memory MODEL will take, part by part, in the chosen runtime.

    On a machine, the model is laid out as the runtime would: one GPU, several, or (llama.cpp,
    Ollama) experts or layers in RAM when the GPUs are too small.
    """
    from qwenfit.cli import render
    from qwenfit.memory.estimator import estimate as run_estimate

    if sweep or plot_file or yarn:
        return _sweep(ctx, model, settings, hardware, online, mmproj, yarn, plot_file, as_json)
    machine = hardware.machine()
    table, spec = _resolve(_table(ctx), model, online, mmproj)
    est = run_estimate(spec, **settings, machine=machine, nodes=nodes, table=table)
    if as_json:
        emit({"schema_version": 1, "estimate": est.model_dump(mode="json")})
    else:
        click.echo(render.estimate(est, machine))


def _sweep(
    ctx: click.Context,
    model: str,
    settings: dict[str, Any],
    hardware: MachineArgs,
    online: bool,
    mmproj: str | None,
    yarn: bool,
    plot_file: str | None,
    as_json: bool,
) -> None:
    """`estimate --sweep` / `--plot`: contexts x KV types (one KV type with --kv-cache)."""
    from qwenfit.cli import render
    from qwenfit.cli.plot import check_path, plot_sweep
    from qwenfit.errors import UsageError
    from qwenfit.memory.sweep import sweep as run_sweep

    if plot_file:
        check_path(plot_file)
    if settings.get("context") is not None:
        raise UsageError("--context and --sweep do not go together: the sweep sets the context")
    unused = [f"--{k.replace('_', '-')}" for k in ("ubatch",) if settings.get(k) is not None]
    if unused:
        raise UsageError(f"{unused[0]} is not used by --sweep")
    machine = hardware.machine()
    table, spec = _resolve(_table(ctx), model, online, mmproj)
    kv = settings.get("kv_cache")
    result = run_sweep(
        spec,
        kv_types=[kv] if kv else None,
        machine=machine,
        runtime=settings.get("runtime"),
        quant=settings.get("quant"),
        parallel=settings.get("parallel", 1),
        text_only=settings.get("text_only", False),
        yarn=yarn,
        table=table,
    )
    if plot_file:
        plot_sweep(result, plot_file)
    if as_json:
        emit({"schema_version": 1, "sweep": result.model_dump(mode="json")})
    else:
        click.echo(render.sweep(result))
        if plot_file:
            click.echo(f"plot written to {plot_file}")


@main.command()
@click.argument("model")
@settings_options()
@hardware_options
@reserve_option
@checkpoint_options
@margin_option
@offload_option
@nodes_option
@disk_options
@json_option
@click.pass_context
def check(
    ctx: click.Context,
    model: str,
    settings: dict[str, Any],
    hardware: MachineArgs,
    margin: Margin,
    allow_offload: bool,
    nodes: int,
    online: bool,
    mmproj: str | None,
    disk: str | None,
    download_speed: int | None,
    as_json: bool,
) -> ExitCode:
    """Does MODEL fit this machine as configured? Exit 0 if it fits, 3 if not.

    By default the whole model must fit the GPU(s); --allow-offload also accepts llama.cpp's
    experts or layers in RAM. On this machine (or with --disk) the download must also fit the
    free space of the folder the runtime stores models in.
    """
    from qwenfit.cli import render
    from qwenfit.fit.preflight import check as run_check

    machine, margin_bytes = margin.apply(hardware.machine())
    table, spec = _resolve(_table(ctx), model, online, mmproj)
    result = run_check(
        spec,
        machine,
        **settings,
        allow_offload=allow_offload,
        nodes=nodes,
        margin=margin_bytes,
        table=table,
        disk=disk,
        # The local disk matters for a probed machine; a planned one only with --disk.
        check_download=machine.source == "probe",
        download_speed=download_speed,
    )
    if as_json:
        emit({"schema_version": 1, "check": result.model_dump(mode="json")})
    else:
        click.echo(render.check(result))
    return ExitCode.OK if result.fits else ExitCode.DOES_NOT_FIT


@main.command()
@settings_options(quant=False, ubatch=False)
@click.option(
    "--task",
    type=click.Choice(["chat", "agent", "code", "vision"]),
    default="chat",
    show_default=True,
    help="Which benchmarks rank the models; the launch step configures the runtime for it.",
)
@click.option(
    "--min-speed",
    type=SpeedType(),
    help="Usable-speed floor, decode tokens/s (default 10 for every task: twice reading "
    "speed, since a thinking model writes its reasoning first). Slower picks are shown only "
    "when nothing faster fits.",
)
@click.option(
    "--prefer",
    type=click.Choice(["quality", "speed"]),
    default="quality",
    show_default=True,
    help="quality: a larger model wins on a higher card score (the tier rule); speed: near-ties "
    "across sizes go to the faster pick.",
)
@click.option(
    "--quant",
    "quants",
    multiple=True,
    help="Only consider these precisions (repeatable, or comma-separated): q4_k_m,q8_0.",
)
@click.option(
    "-n",
    "limit",
    type=click.IntRange(1, 1000),
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
@family_option
@hardware_options
@checkpoint_options
@offload_option
@nodes_option
@json_option
@click.pass_context
def recommend(
    ctx: click.Context,
    settings: dict[str, Any],
    family: str,
    task: str,
    min_speed: float | None,
    prefer: str,
    quants: tuple[str, ...],
    limit: int,
    models: tuple[str, ...],
    hardware: MachineArgs,
    allow_offload: bool,
    nodes: int,
    online: bool,
    mmproj: str | None,
    as_json: bool,
) -> ExitCode:
    """The best Qwen3.5 model, precision and context for this machine, and how to start it."""
    from qwenfit.cli import render
    from qwenfit.recommender.policy import Prefer
    from qwenfit.recommender.ranking import recommend as run_recommend

    machine = hardware.machine()
    table = _table(ctx)
    only = []
    for ref in models:
        table, spec = _resolve(table, ref, online, mmproj)
        only.append(spec.name)
    result = run_recommend(
        machine,
        **settings,
        models=only or None,
        family=family,
        task=cast("Task", task),
        min_speed=min_speed,
        allow_offload=allow_offload,
        nodes=nodes,
        limit=limit,
        table=table,
        prefer=cast("Prefer", prefer),
        quants=[q for item in quants for q in item.split(",")] or None,
    )
    if as_json:
        emit(result.model_dump(mode="json"))  # machine, recommendations, ... at the top
    else:
        click.echo(render.recommendation(result))
    return ExitCode.OK if result.recommendations else ExitCode.DOES_NOT_FIT


@main.command()
@click.argument("model", required=False)
@settings_options()
@click.option(
    "--task",
    type=click.Choice(["chat", "agent", "code", "vision"]),
    default="chat",
    show_default=True,
    help="Sampling preset and settings: agent adds tool calls, code the coding preset.",
)
@hardware_options
@checkpoint_options
@margin_option
@offload_option
@nodes_option
@json_option
@click.pass_context
def launch(
    ctx: click.Context,
    model: str | None,
    settings: dict[str, Any],
    task: str,
    hardware: MachineArgs,
    online: bool,
    mmproj: str | None,
    margin: Margin,
    allow_offload: bool,
    nodes: int,
    as_json: bool,
) -> ExitCode:
    """The command that starts MODEL (default: the top recommendation). Runs nothing.

    MODEL is checked against this machine as `check` does: exit 3, with the command and the
    verdict, when it does not fit.
    """
    from qwenfit.cli import render
    from qwenfit.recommender.launching import launch_plan

    machine, margin_bytes = margin.apply(hardware.machine())
    table = _table(ctx)
    spec = None
    if model is not None:
        table, spec = _resolve(table, model, online, mmproj)
    plan = launch_plan(
        spec,
        machine,
        **settings,
        task=cast("Task", task),
        allow_offload=allow_offload,
        nodes=nodes,
        margin=margin_bytes,
        mmproj=mmproj,
        table=table,
    )
    if as_json:
        emit(plan.model_dump(mode="json"))
    else:
        text = render.launch(plan.launch)
        reason = plan.fit.reason if plan.fit else ""
        click.echo(text if plan.fits else f"# DOES NOT FIT this machine: {reason}\n{text}")
    fits = plan.fits
    return ExitCode.OK if fits else ExitCode.DOES_NOT_FIT


@main.group(cls=QwenfitGroup)
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
    from qwenfit.cli.progress import spinner
    from qwenfit.specs.checkpoints.refresh import refresh_specs

    table = _table(ctx)
    with spinner("reading the official Qwen3.5 repos"):
        diff = refresh_specs(table, online=online)
    click.echo(diff or "the spec table matches the Hub", nl=not diff.endswith("\n"))


SERVE_EXTRA = "this command needs the serve extra: pip install 'qwenfit[serve]'"


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--allow-dir",
    type=click.Path(exists=True, file_okay=False),
    help="Let clients name local checkpoints, but only below this folder.",
)
def serve(host: str, port: int, allow_dir: str | None) -> ExitCode:
    """Serve the REST API, the page at / and MCP at /mcp over HTTP (needs qwenfit[serve])."""
    import ipaddress

    try:
        import uvicorn

        from qwenfit.serve.app import create_app
    except ImportError:
        click.echo(f"Error: {SERVE_EXTRA}", err=True)
        return ExitCode.ERROR
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        click.echo(
            f"warning: listening on {host}: anyone who can reach it can use the API "
            "(no authentication)",
            err=True,
        )
    uvicorn.run(create_app(allow_dir=allow_dir, host=host), host=host, port=port)
    return ExitCode.OK


@main.command()
@click.option(
    "--allow-dir",
    type=click.Path(exists=True, file_okay=False),
    help="Let the agent name local checkpoints, but only below this folder.",
)
def mcp(allow_dir: str | None) -> ExitCode:
    """Run the MCP server over stdio, for an agent (needs qwenfit[serve])."""
    try:
        from qwenfit.serve.mcp_server import run_stdio
    except ImportError:
        click.echo(f"Error: {SERVE_EXTRA}", err=True)
        return ExitCode.ERROR
    run_stdio(allow_dir)
    return ExitCode.OK
