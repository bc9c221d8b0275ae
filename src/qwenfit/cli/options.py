"""What every command shares: option types, option groups, and the error-to-exit-code table.

Values are parsed by click `ParamType`s, so a bad `--vram` or `--context` fails inside click with
its usual message and exit 2 before any work starts. Errors raised later by the library reach
`QwenfitGroup`, the only place that turns an exception or a result into an exit code.

Over 400 lines because it is the one place for every shared option and option type; splitting it
would scatter the contract.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from qwenfit.errors import NoFitError, QwenfitError, UsageError
from qwenfit.units import parse_bandwidth, parse_context, parse_size

if TYPE_CHECKING:
    from qwenfit.fit.margin import Margin
    from qwenfit.hardware.machine import Machine

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


# The one table from error class to exit code; the most specific class that matches wins.
ERROR_EXIT_CODES: tuple[tuple[type[QwenfitError], ExitCode], ...] = (
    (UsageError, ExitCode.USAGE),
    (NoFitError, ExitCode.DOES_NOT_FIT),
    (QwenfitError, ExitCode.ERROR),
)

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
            result = super().invoke(ctx)
        except QwenfitError as e:
            # As click shows its own errors: 'Error: ...' on stderr, one line whatever it held.
            click.echo(f"Error: {' '.join(str(e).split())}", err=True)
            ctx.exit(next(int(code) for cls, code in ERROR_EXIT_CODES if isinstance(e, cls)))
        except OSError as e:
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
            self.fail(f"{value!r}: {reason}", param, ctx)


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
    """A size (1GiB, 0) or a percentage of the pool (10%)."""

    name = "margin"

    def parse(self, value: str) -> Margin:
        from qwenfit.fit.margin import parse_margin

        return parse_margin(value)


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


@dataclass(frozen=True)
class MachineArgs:
    """The hardware options of one command; `machine()` probes only when they leave gaps."""

    gpu: str | None
    vram: int | None
    ram: int | None
    ram_bandwidth: int | None
    machine_file: str | None
    reserve: str | None = None
    gpu_bandwidth: int | None = None

    def machine(self) -> Machine:
        from qwenfit.hardware.catalog import load_machine, with_overrides

        if self.machine_file:
            base = load_machine(self.machine_file)
        elif (self.gpu or self.vram is not None) and self.ram:
            base = None  # fully hypothetical: no need to probe
        else:
            from qwenfit.hardware.probing import probe

            base = probe()
        machine = with_overrides(
            base,
            gpu=self.gpu,
            vram=self.vram,
            ram=self.ram,
            ram_bandwidth=self.ram_bandwidth,
            reserve=self.reserve,
            gpu_bandwidth=self.gpu_bandwidth,
        )
        for w in machine.warnings:
            click.echo(f"warning: {w}", err=True)
        return machine


_HARDWARE = ("gpu", "vram", "ram", "ram_bandwidth", "machine_file", "gpu_bandwidth")


def hardware_options(f: F) -> F:
    """--gpu --vram --ram --ram-bandwidth --machine, handed to the command as `hardware`."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        hardware = MachineArgs(**{k: kwargs.pop(k) for k in _HARDWARE})
        return f(*args, hardware=hardware, **kwargs)

    return _stack(
        cast(F, wrapper),
        [
            click.option(
                "--gpu",
                envvar="QWENFIT_GPU",
                help='Plan for a GPU from the catalog, e.g. "RTX 4090" or "2x H100".',
            ),
            click.option(
                "--vram",
                envvar="QWENFIT_VRAM",
                type=SizeType(allow_zero=True),
                help="Plan for a GPU with this much free memory, e.g. 24GB or 24GiB (0: no GPU).",
            ),
            click.option(
                "--ram",
                envvar="QWENFIT_RAM",
                type=SizeType(),
                help="Plan for this much usable RAM, e.g. 64GB.",
            ),
            click.option(
                "--ram-bandwidth",
                "ram_bandwidth",
                envvar="QWENFIT_RAM_BANDWIDTH",
                type=BandwidthType(),
                help="RAM bandwidth for CPU / offload speed, e.g. 80GB/s (probed if unset).",
            ),
            click.option(
                "--gpu-bandwidth",
                "gpu_bandwidth",
                envvar="QWENFIT_GPU_BANDWIDTH",
                type=BandwidthType(),
                help="Memory bandwidth of each GPU, e.g. 936GB/s (for a GPU not in the catalog).",
            ),
            click.option(
                "--machine",
                "machine_file",
                type=click.Path(dir_okay=False),
                help="A machine saved with 'qwenfit probe --json'.",
            ),
        ],
    )


RUNTIME_HELP = "llama.cpp, ollama, vllm or transformers (default: what suits the machine)."
KV_HELP = "KV cache type: f16, bf16, q8_0, q4_0, fp8."


def settings_options(*, quant: bool = True, ubatch: bool = True) -> Callable[[F], F]:
    """The configuration options shared by estimate, check, launch and recommend, handed to
    the command as one `settings` dict of keyword arguments for the library."""
    names = ["runtime", "context", "kv_cache", "parallel", "flash_attn", "text_only", "mtp"]
    names += ["quant"] * quant + ["ubatch"] * ubatch

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            settings = {k: kwargs.pop(k) for k in names}
            return f(*args, settings=settings, **kwargs)

        options: list[Callable[[F], F]] = [
            click.option("--runtime", envvar="QWENFIT_RUNTIME", help=RUNTIME_HELP),
        ]
        if quant:
            options.append(
                click.option("--quant", help="Precision, e.g. q4_k_m, q8_0, bf16, fp8, gptq-int4.")
            )
        options += [
            click.option(
                "--context", type=ContextType(), help="Tokens per sequence: 32768, 32k, 256k."
            ),
            click.option("--kv-cache", "kv_cache", help=KV_HELP),
            click.option(
                "--parallel",
                type=click.IntRange(1, 4096),
                default=1,
                show_default=True,
                help="Sequences served at once (slots / max-num-seqs).",
            ),
        ]
        if ubatch:
            options.append(
                click.option(
                    "--ubatch", type=click.IntRange(1, 65536), help="llama.cpp micro-batch."
                )
            )
        options += [
            click.option(
                "--flash-attn",
                "flash_attn",
                type=click.Choice(["auto", "on", "off"]),
                default="auto",
                show_default=True,
                help="llama.cpp flash attention.",
            ),
            click.option("--text-only", is_flag=True, help="Leave the vision tower out."),
            click.option(
                "--mtp",
                is_flag=True,
                help="MTP speculative decoding (llama.cpp --spec-type draft-mtp, vLLM method "
                "mtp): charges its memory and its published speed gain.",
            ),
        ]
        return _stack(cast(F, wrapper), options)

    return decorate


def family_option(f: F) -> F:
    return click.option(
        "--family",
        type=click.Choice(["qwen3.5", "qwen3.6", "qwen3.8", "all"]),
        default="qwen3.5",
        show_default=True,
        help="Release line on the Qwen3.5 architecture to consider.",
    )(f)


def checkpoint_options(f: F) -> F:
    return _stack(
        f,
        [
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
        ],
    )


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


def margin_option(f: F) -> F:
    return click.option(
        "--margin",
        type=MarginType(),
        default="1GiB",
        show_default=True,
        help="Memory to keep free per pool: a size (1GiB) or a percentage (10%).",
    )(f)


def sweep_options(f: F) -> F:
    """--sweep, --yarn and --plot FILE for `estimate`."""
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
                "--yarn", is_flag=True, help="With --sweep: go on to the YaRN-extended context."
            ),
            click.option(
                "--plot",
                "plot_file",
                type=click.Path(dir_okay=False, writable=True),
                help="Draw the sweep into FILE (.png or .svg; needs the plot extra).",
            ),
        ],
    )


def reserve_option(f: F) -> F:
    """--reserve SIZE | SIZE@N, folded into the command's `hardware` (MachineArgs)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        reserve = kwargs.pop("reserve")
        if reserve is not None:
            from dataclasses import replace

            kwargs["hardware"] = replace(kwargs["hardware"], reserve=reserve)
        return f(*args, **kwargs)

    return click.option(
        "--reserve",
        envvar="QWENFIT_RESERVE",
        help="Memory to keep free for the desktop and other programs, per GPU (1.5GB) or for "
        "one GPU (1.5GB@0; comma-separated for several); probed and planned machines alike.",
    )(cast(F, wrapper))


def disk_options(f: F) -> F:
    """--disk PATH|SIZE and --download-speed SPEED."""
    return _stack(
        f,
        [
            click.option(
                "--disk",
                help="Check the download against this folder's free space, or a free size "
                "(200GB); default: the runtime's model folder (Hugging Face cache, Ollama's).",
            ),
            click.option(
                "--download-speed",
                "download_speed",
                type=BandwidthType(),
                help="Download speed, e.g. 50MB/s: shows how long the download takes.",
            ),
        ],
    )
