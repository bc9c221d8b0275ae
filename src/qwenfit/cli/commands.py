"""The `qwenfit` commands: each turns its options into one library call and prints the result.

Options and their types live in `cli.options`; exit codes come from `QwenfitGroup` (a returned
`ExitCode`, or the error table). Heavy modules are imported inside the commands so that
`qwenfit --help` and shell completion stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import click

from qwenfit.cli.options import (
    EXIT_CODES_HELP,
    ExitCode,
    MachineArgs,
    Margin,
    QwenfitGroup,
    SpeedType,
    checkpoint_options,
    emit,
    hardware_options,
    json_option,
    margin_option,
    nodes_option,
    offload_option,
    settings_options,
)

if TYPE_CHECKING:
    from qwenfit.recommender.ranking import Task
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
@json_option
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """List the Qwen3.5 models of the spec table with their sizes and precisions."""
    from qwenfit.cli import render

    table = _table(ctx)
    if as_json:
        emit({"schema_version": 1, "models": [m.model_dump(mode="json") for m in table.models]})
    else:
        click.echo(render.models(table))


@main.command()
@click.argument("model")
@settings_options()
@hardware_options
@checkpoint_options
@nodes_option
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
    as_json: bool,
) -> None:
    """Memory MODEL will take, part by part, in the chosen runtime.

    On a machine, the model is laid out as the runtime would: one GPU, several, or (llama.cpp,
    Ollama) experts or layers in RAM when the GPUs are too small.
    """
    from qwenfit.cli import render
    from qwenfit.memory.estimator import estimate as run_estimate

    machine = hardware.machine()
    table, spec = _resolve(_table(ctx), model, online, mmproj)
    est = run_estimate(spec, **settings, machine=machine, nodes=nodes, table=table)
    if as_json:
        emit({"schema_version": 1, "estimate": est.model_dump(mode="json")})
    else:
        click.echo(render.estimate(est))


@main.command()
@click.argument("model")
@settings_options()
@hardware_options
@checkpoint_options
@margin_option
@offload_option
@nodes_option
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
    as_json: bool,
) -> ExitCode:
    """Does MODEL fit this machine as configured? Exit 0 if it fits, 3 if not.

    By default the whole model must fit the GPU(s); --allow-offload also accepts llama.cpp's
    experts or layers in RAM.
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
    help="Which benchmarks rank the models.",
)
@click.option(
    "--min-speed",
    type=SpeedType(),
    help="Minimum decode tokens/s.",
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
@hardware_options
@checkpoint_options
@offload_option
@nodes_option
@json_option
@click.pass_context
def recommend(
    ctx: click.Context,
    settings: dict[str, Any],
    task: str,
    min_speed: float | None,
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
        task=cast("Task", task),
        min_speed=min_speed,
        allow_offload=allow_offload,
        nodes=nodes,
        limit=limit,
        table=table,
    )
    if as_json:
        emit(result.model_dump(mode="json"))  # machine, recommendations, ... at the top
    else:
        click.echo(render.recommendation(result))
    return ExitCode.OK if result.recommendations else ExitCode.DOES_NOT_FIT


@main.command()
@click.argument("model", required=False)
@settings_options()
@hardware_options
@checkpoint_options
@nodes_option
@json_option
@click.pass_context
def launch(
    ctx: click.Context,
    model: str | None,
    settings: dict[str, Any],
    hardware: MachineArgs,
    online: bool,
    mmproj: str | None,
    nodes: int,
    as_json: bool,
) -> ExitCode:
    """The command that starts MODEL (default: the top recommendation). Runs nothing."""
    from qwenfit.cli import render
    from qwenfit.errors import NoFitError
    from qwenfit.launch.commands import launch_command
    from qwenfit.memory.estimator import estimate as run_estimate
    from qwenfit.recommender.ranking import recommend as run_recommend

    machine = hardware.machine()
    table = _table(ctx)
    if model is None:
        picks = {k: v for k, v in settings.items() if k not in ("quant", "ubatch")}
        result = run_recommend(machine, **picks, limit=1, nodes=nodes, table=table)
        if not result.recommendations:
            raise NoFitError("nothing fits this machine; see 'qwenfit recommend'")
        cmd = result.recommendations[0].launch
    else:
        table, spec = _resolve(table, model, online, mmproj)
        est = run_estimate(spec, **settings, machine=machine, nodes=nodes, table=table)
        cmd = launch_command(est, table=table)
    if as_json:
        emit({"schema_version": 1, "launch": cmd.model_dump(mode="json")})
    else:
        click.echo(render.launch(cmd))
    return ExitCode.OK


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
    from qwenfit.specs.checkpoints.hub import refresh_specs

    table = _table(ctx)
    with spinner("reading the official Qwen3.5 repos"):
        diff = refresh_specs(table, online=online)
    click.echo(diff or "the spec table matches the Hub", nl=not diff.endswith("\n"))
