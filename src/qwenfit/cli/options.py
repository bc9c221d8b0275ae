"""What every command shares: option types, the click options derived from the one settings
schema (`qwenfit.settings`), and the request values they make.

Values are parsed by click `ParamType`s, so a bad `--vram` or `--context` fails inside click with
its usual message and exit 2 before any work starts. Errors raised later by the library reach
`QwenfitGroup`, the only place that turns an exception or a result into an exit code (by
`errors.ERROR_TABLE`, the table the service answers HTTP statuses from too).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import functools
import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from qwenfit.errors import QwenfitError, UsageError, exit_code_and_status
from qwenfit.settings import COMMANDS, SETTINGS, Setting
from qwenfit.units import parse_bandwidth, parse_context, parse_size

if TYPE_CHECKING:
    from qwenfit.hardware import Machine

F = TypeVar("F", bound=Callable[..., Any])
# click's ParamType is generic in recent releases; older ones cannot be subscripted at run time.
if TYPE_CHECKING:
    from typing import TypeAlias

    ParamTypeBase: TypeAlias = click.ParamType[Any]
else:
    ParamTypeBase = click.ParamType


class ExitCode(enum.IntEnum):
    """The exit codes of every command (also printed by `qwenfit --help`)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    DOES_NOT_FIT = 3


EXIT_CODES_HELP = """\b
Exit codes:
  0  success; for check: the configuration fits
  1  error (bad spec table, unreadable file, probe failure)
  2  usage error (bad option value, unknown model, unsupported precision)
  3  does not fit (check), or nothing fits (recommend)
"""


class QwenfitGroup(click.Group):
    """Runs a command, maps library errors to exit codes, and honours a returned `ExitCode`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            if ctx.parent is None:
                from qwenfit.cli.output import whole_stdout
                from qwenfit.cli.resources import address_space_problem

                problem = address_space_problem()
                if problem:
                    raise QwenfitError(problem)
                whole_stdout()  # a write that loses bytes raises instead (ulimit -f, full disk)
            result = super().invoke(ctx)
            if ctx.parent is None and sys.stdout is not None:
                sys.stdout.flush()  # inside the try: a late write error is one line, exit 1
        except QwenfitError as e:
            # As click shows its own errors: 'Error: ...' on stderr, one line whatever it held.
            message = " ".join(str(e).split())
            click.echo(f"Error: {message}{env_origin(message)}", err=True)
            ctx.exit(exit_code_and_status(e)[0])
        except KeyboardInterrupt:
            _silence_stdout()
            with contextlib.suppress(OSError):
                click.echo("Error: interrupted", err=True)
            ctx.exit(130)  # 128 + SIGINT, as shells report it
        except (MemoryError, ImportError, SystemError) as e:
            # An address-space limit (ulimit -v) or a full machine: one line, no traceback
            # (which would need memory itself). Anything else of these kinds is a bug.
            from qwenfit.cli.resources import OUT_OF_MEMORY, is_out_of_memory

            if not is_out_of_memory(e):
                raise
            _silence_stdout()
            with contextlib.suppress(OSError, MemoryError):
                click.echo(f"Error: {OUT_OF_MEMORY}", err=True)
            ctx.exit(int(ExitCode.ERROR))
        except OSError as e:
            if e.errno == errno.ENOMEM:
                from qwenfit.cli.resources import OUT_OF_MEMORY

                _silence_stdout()
                click.echo(f"Error: {OUT_OF_MEMORY}", err=True)
                ctx.exit(int(ExitCode.ERROR))
            # stdout closed (a pipe whose reader left) or full (/dev/full): the output cannot be
            # written. Point stdout at /dev/null so the exit flush cannot fail a second time.
            _silence_stdout()
            reason = (e.strerror or type(e).__name__).lower()
            with contextlib.suppress(OSError):
                click.echo(f"Error: cannot write the output ({reason})", err=True)
            ctx.exit(int(ExitCode.ERROR))
        if isinstance(result, ExitCode) and result is not ExitCode.OK:
            ctx.exit(int(result))
        return result


def env_origin(message: str) -> str:
    """' (from QWENFIT_X)' when the bad value the message quotes came from that variable (and
    not from the command line), so the user knows where to fix it."""
    for name, value in sorted(os.environ.items()):
        if not name.startswith("QWENFIT_") or len(value) < 2:
            continue
        if (repr(value) in message or f"'{value}'" in message) and value not in sys.argv[1:]:
            return f" (from {name})"
    return ""


def _silence_stdout() -> None:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (click's test runner)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def emit(payload: dict[str, Any]) -> None:
    """Print one JSON document to stdout."""
    click.echo(json.dumps(payload, indent=2))


class _Parsed(ParamTypeBase):
    """A click type around one of `qwenfit.units`' parsers: its UsageError becomes click's."""

    def parse(self, value: str) -> Any:
        raise NotImplementedError

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except UsageError as e:
            reason = str(e).split(": ", 1)[-1]
            source = ctx.get_parameter_source(param.name) if ctx and param and param.name else None
            envvar = getattr(param, "envvar", None)
            origin = (
                f" (from {envvar})"
                if source is click.core.ParameterSource.ENVIRONMENT and isinstance(envvar, str)
                else ""
            )
            self.fail(f"{value!r}{origin}: {reason}", param, ctx)


class SizeType(_Parsed):
    """A memory size: 24GB (10^9 bytes each), 24GiB (2^30), 512MiB; `0` where allowed."""

    name = "size"

    def __init__(self, allow_zero: bool = False) -> None:
        self.allow_zero = allow_zero

    def parse(self, value: str) -> int:
        return parse_size(value, what="size", allow_zero=self.allow_zero)


class BandwidthType(_Parsed):
    """A bandwidth: 80GB/s (80 x 10^9 bytes/s) or 75GiB/s."""

    name = "bandwidth"

    def parse(self, value: str) -> int:
        return parse_bandwidth(value)


class ContextType(_Parsed):
    """Tokens per sequence: 32768, 32k, 128K, 1m (k = 1024 tokens)."""

    name = "context"

    def parse(self, value: str) -> int:
        return parse_context(value)


class MarginType(_Parsed):
    """A size (1GiB, 0) or a percentage of the pool (10%); checked here, kept as given (the
    service's request takes the same text on every face)."""

    name = "margin"

    def parse(self, value: str) -> str:
        from qwenfit.fit import parse_margin

        parse_margin(value)
        return value


class SpeedType(click.FloatRange):
    """Tokens per second: a finite number, zero or more."""

    name = "speed"

    def __init__(self) -> None:
        super().__init__(min=0)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        result = super().convert(value, param, ctx)
        if not math.isfinite(result):
            self.fail(f"{value!r} is not a finite number of tokens per second", param, ctx)
        return result


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(f)


def _stack(f: F, options: list[Callable[[F], F]]) -> F:
    for opt in reversed(options):
        f = opt(f)
    return f


def _click_type(s: Setting) -> Any:
    """The click type of one declared option (the same `qwenfit.units` parsers as the service)."""
    if s.kind == "choice":
        return click.Choice(list(s.choices))
    if s.kind == "int":
        return click.IntRange(s.minimum, s.maximum)
    if s.kind == "size":
        return SizeType(allow_zero=s.minimum == 0)
    if s.kind == "bandwidth":
        return BandwidthType()
    if s.kind == "context":
        return ContextType()
    if s.kind == "margin":
        return MarginType()
    if s.kind == "speed":
        return SpeedType()
    if s.kind == "machine":
        return click.Path(dir_okay=False)
    return None  # text, texts, reserve: strings


def _click_option(s: Setting) -> Callable[[F], F]:
    kwargs: dict[str, Any] = {"help": s.help, "envvar": s.envvar}
    if s.kind == "flag":
        kwargs["is_flag"] = True
    else:
        kwargs["type"] = _click_type(s)
        kwargs["multiple"] = s.kind == "texts"
        if s.default is not None:
            kwargs.update(default=s.default, show_default=True)
    if s.kind == "document":
        kwargs.update(type=None, metavar="FILE|-")
    return click.option(s.cli_flag, s.name, **kwargs)


def settings_options(*commands: str, model_option: bool = False) -> Callable[[F], F]:
    """The click options of `commands`' declared settings, handed to the command as one
    `values` dict keyed by setting name. The model is the commands' argument, unless
    `model_option` makes it an option (`fleet --model`)."""
    names = [n for c in commands for n in COMMANDS[c] if model_option or n != "model"]
    names = list(dict.fromkeys(names))

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {k: kwargs.pop(k) for k in names}
            return f(*args, values=values, **kwargs)

        return _stack(cast(F, wrapper), [_click_option(SETTINGS[n]) for n in names])

    return decorate


def request_values(
    command: str, values: dict[str, Any], *, model: str | None = None
) -> dict[str, Any]:
    """The values of `command`'s request from a CLI command's options: the machine file read,
    repeated options as lists, unset options left to the request's defaults. An option given
    that `command` does not take is a usage error naming it."""
    from qwenfit.hardware import load_machine

    wanted = set(COMMANDS[command])
    out: dict[str, Any] = {} if model is None else {"model": model}
    for name, value in values.items():
        s = SETTINGS[name]
        if value is None or value == () or (s.kind == "flag" and value is False):
            continue
        if value == s.default:
            continue
        if name not in wanted:
            raise UsageError(f"{s.cli_flag} does not apply here")
        if s.kind == "machine":
            value = load_machine(value)
        elif s.kind == "document":
            value = read_document(value, f"{s.cli_flag} file")
        elif s.kind == "texts":
            value = list(value)
        out[s.field] = value
    return out


MAX_DOCUMENT_BYTES = 64 * 2**20  # a 5,000-node list with full GFD label sets stays well below


def read_document(path: str, what: str) -> Any:
    """A JSON document from a file, or from standard input for '-' (bounded, one-line errors)."""
    from qwenfit.errors import BadFileError
    from qwenfit.inputs import parse_json, read_json

    if path != "-":
        return read_json(path, what=what, max_bytes=MAX_DOCUMENT_BYTES)
    data = sys.stdin.buffer.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise BadFileError(f"{what} on stdin: larger than {MAX_DOCUMENT_BYTES // 2**20} MiB")
    return parse_json(data, what=what, origin="(stdin)")


@dataclass
class Planned:
    """The machine a command planned on and its margin, as the service tells it; what the
    machine construction noticed goes to stderr (the document stays clean)."""

    machine: Machine | None = None
    margin: int = 0

    def __call__(self, machine: Machine, margin: int) -> None:
        self.machine, self.margin = machine, margin
        for w in machine.warnings:
            click.echo(f"warning: {w}", err=True)


def online_option(f: F) -> F:
    return click.option(
        "--online",
        is_flag=True,
        help="Allow reading a Hugging Face repo id from the Hub (headers only).",
    )(f)


def sweep_options(f: F) -> F:
    """--sweep and --plot FILE for `estimate` (--yarn is the sweep's own setting)."""
    return _stack(
        f,
        [
            click.option(
                "--sweep",
                is_flag=True,
                help="Tabulate memory and speed from 4k to the native context for every KV "
                "cache type, and mark the largest context that fits.",
            ),
            click.option(
                "--plot",
                "plot_file",
                type=click.Path(dir_okay=False, writable=True),
                help="Draw the sweep into FILE (.png or .svg; needs the plot extra).",
            ),
        ],
    )
