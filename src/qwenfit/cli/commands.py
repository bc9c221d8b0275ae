"""The `qwenfit` commands: each turns its options into its command's request, asks the handler
every face asks (`serve.service.Service.record`), and prints the record.

Options and their types live in `cli.options`; exit codes come from `QwenfitGroup` (a returned
`ExitCode`, or the error table). Heavy modules are imported inside the commands so that
`qwenfit --help` and shell completion stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from qwenfit.cli.fleet import fleet as fleet_command
from qwenfit.cli.options import (
    EXIT_CODES_HELP,
    ExitCode,
    Planned,
    QwenfitGroup,
    emit,
    json_option,
    online_option,
    request_values,
    settings_options,
    sweep_options,
)
from qwenfit.cli.verifying import verify as verify_command

if TYPE_CHECKING:
    from qwenfit.serve.service import Service


def _service(ctx: click.Context, online: bool = False, planned: Planned | None = None) -> Service:
    """The handlers every face answers through, reading local files as a CLI may (and the Hub
    with --online), and telling `planned` the machine it plans on."""
    from qwenfit.serve.service import Service
    from qwenfit.specs import load_specs

    table = load_specs(ctx.find_root().params.get("specs"))
    return Service(table=table, local_files=True, online=online, on_machine=planned or Planned())


def _answer(
    ctx: click.Context,
    command: str,
    values: dict[str, Any],
    online: bool,
    planned: Planned | None = None,
) -> Any:
    """`command`'s record for the request `values` make (with a spinner while the Hub is read)."""
    from contextlib import nullcontext

    from qwenfit.cli.progress import spinner

    service = _service(ctx, online, planned)
    busy = spinner("reading from the Hugging Face Hub") if online else nullcontext()
    with busy:
        return service.record(command, values)


def _print(command: str, record: Any, as_json: bool, text: str) -> None:
    from qwenfit.serve.service import document

    if as_json:
        emit(document(command, record))
    else:
        click.echo(text)


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
@settings_options("probe")
@json_option
@click.option(
    "--measure",
    is_flag=True,
    help="Measure this machine's RAM bandwidth again now (refused while the CPU is busy).",
)
@click.pass_context
def probe(ctx: click.Context, values: dict[str, Any], as_json: bool, measure: bool) -> None:
    """Show the GPUs, RAM and runtimes qwenfit sees (or the hypothetical machine)."""
    from qwenfit.cli import render

    if measure:
        from qwenfit.hardware import ram_bandwidth

        ram_bandwidth(force=True)

    m = _answer(ctx, "probe", request_values("probe", values), online=False)
    _print("probe", m, as_json, "" if as_json else render.machine(m))


@main.command()
@settings_options("models")
@json_option
@click.pass_context
def models(ctx: click.Context, values: dict[str, Any], as_json: bool) -> None:
    """List the models of the spec table (one release line, or all) with sizes and sources."""
    from qwenfit.cli import render

    rows = _answer(ctx, "models", request_values("models", values), online=False)
    table = _service(ctx).table
    _print(
        "models",
        rows,
        as_json,
        "" if as_json else render.models(table.model_copy(update={"models": rows})),
    )


@main.command()
@click.argument("model")
@settings_options("estimate", "sweep")
@online_option
@sweep_options
@json_option
@click.pass_context
def estimate(
    ctx: click.Context,
    model: str,
    values: dict[str, Any],
    online: bool,
    sweep: bool,
    plot_file: str | None,
    as_json: bool,
) -> None:
    """Memory MODEL will take, part by part, in the chosen runtime.

    On a machine, the model is laid out as the runtime would: one GPU, several, or (llama.cpp,
    Ollama) experts or layers in RAM when the GPUs are too small. With --sweep (or --yarn,
    --plot): memory, speed and fit at each context and KV cache type.
    """
    from qwenfit.cli import render

    if sweep or plot_file or values.get("yarn"):
        return _sweep(ctx, model, values, online, plot_file, as_json)
    planned = Planned()
    values = request_values("estimate", values, model=model)
    est = _answer(ctx, "estimate", values, online, planned)
    text = "" if as_json else render.estimate(est, planned.machine, planned.margin)
    _print("estimate", est, as_json, text)


def _sweep(
    ctx: click.Context,
    model: str,
    values: dict[str, Any],
    online: bool,
    plot_file: str | None,
    as_json: bool,
) -> None:
    """`estimate --sweep` / `--plot`: contexts x KV types (one KV type with --kv-cache)."""
    from qwenfit.cli import render
    from qwenfit.cli.plot import check_path, plot_sweep
    from qwenfit.errors import UsageError

    if plot_file:
        check_path(plot_file)
    if values.get("context") is not None:
        raise UsageError("--context and --sweep do not go together: the sweep sets the context")
    result = _answer(ctx, "sweep", request_values("sweep", values, model=model), online)
    if plot_file:
        plot_sweep(result, plot_file)
    _print("sweep", result, as_json, "" if as_json else render.sweep(result))
    if plot_file and not as_json:
        click.echo(f"plot written to {plot_file}")


@main.command()
@click.argument("model")
@settings_options("check")
@online_option
@json_option
@click.pass_context
def check(
    ctx: click.Context, model: str, values: dict[str, Any], online: bool, as_json: bool
) -> ExitCode:
    """Does MODEL fit this machine as configured? Exit 0 if it fits, 3 if not.

    By default the whole model must fit the GPU(s); --allow-offload also accepts llama.cpp's
    experts or layers in RAM. On this machine (or with --disk) the download must also fit the
    free space of the folder the runtime stores models in.
    """
    from qwenfit.cli import render

    result = _answer(ctx, "check", request_values("check", values, model=model), online)
    _print("check", result, as_json, "" if as_json else render.check(result))
    return ExitCode.OK if result.fits else ExitCode.DOES_NOT_FIT


@main.command()
@settings_options("recommend")
@online_option
@json_option
@click.pass_context
def recommend(ctx: click.Context, values: dict[str, Any], online: bool, as_json: bool) -> ExitCode:
    """The best Qwen3.5 model, precision and context for this machine, and how to start it."""
    from qwenfit.cli import render

    result = _answer(ctx, "recommend", request_values("recommend", values), online)
    _print("recommend", result, as_json, "" if as_json else render.recommendation(result))
    return ExitCode.OK if result.recommendations else ExitCode.DOES_NOT_FIT


@main.command()
@click.argument("model", required=False)
@settings_options("launch")
@online_option
@json_option
@click.pass_context
def launch(
    ctx: click.Context, model: str | None, values: dict[str, Any], online: bool, as_json: bool
) -> ExitCode:
    """The command that starts MODEL (default: the top recommendation). Runs nothing.

    Settings not given are completed as `recommend --model MODEL` would complete them. MODEL is
    checked against this machine as `check` does: exit 3, with the command and the verdict,
    when no setting of it fits.
    """
    from qwenfit.cli import render

    plan = _answer(ctx, "launch", request_values("launch", values, model=model), online)
    text = "" if as_json else render.launch(plan.launch)
    if not plan.fits and not as_json:
        text = f"{render.comment(f'DOES NOT FIT this machine: {plan.fit.reason}')}\n{text}"
    _print("launch", plan, as_json, text)
    return ExitCode.OK if plan.fits else ExitCode.DOES_NOT_FIT


@main.group(cls=QwenfitGroup)
def specs() -> None:
    """The spec table: see where a fresh read of the Hub differs from it."""


@specs.command()
@click.option(
    "--online",
    is_flag=True,
    help="Required: this reads the official repos from the Hugging Face Hub.",
)
@click.pass_context
def refresh(ctx: click.Context, online: bool) -> None:
    """Print, as a unified diff, what the Hub says differs from the spec table.

    Nothing is changed: review the diff and apply it to data/model_specs.json by hand.
    """
    from qwenfit.cli.progress import spinner
    from qwenfit.specs import refresh_specs

    table = _service(ctx).table
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
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    help="Also answer requests whose Host header names this (repeatable; loopback names and "
    "--host always are).",
)
def serve(host: str, port: int, allow_dir: str | None, allow_hosts: tuple[str, ...]) -> ExitCode:
    """Serve the REST API, the page at / and MCP at /mcp over HTTP (needs qwenfit[serve])."""
    import ipaddress

    try:
        import uvicorn

        from qwenfit.serve.app import create_app
        from qwenfit.serve.transport import listening_socket, server_config
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
    sock = listening_socket(host, port)  # a taken port: one line naming it, before start-up
    app = create_app(allow_dir=allow_dir, host=host, allow_hosts=allow_hosts)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"serving http://{shown}:{sock.getsockname()[1]}/ (Ctrl-C stops)", err=True)
    uvicorn.Server(server_config(app, host, port)).run(sockets=[sock])
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


main.add_command(fleet_command)  # qwenfit fleet: Kubernetes node pools (cli/fleet.py)
main.add_command(verify_command)  # qwenfit verify: a running runtime against the estimate
