"""The questions every face answers: one request model per command, one handler, one document.

The request models are derived from the one settings schema (`qwenfit.settings`): the same
names, defaults, bounds and help as the CLI's options, unknown keys refused. The CLI builds the
same request from its options and calls the same handler as the REST API and the MCP server, so
`qwenfit estimate ... --json`, `POST /v1/estimate` and the MCP tool `estimate` print one document
for one question by construction. `document()` is the one JSON envelope
(`{"schema_version": 3, "<command>": ...}`) and `document_models()` the records its schemas
come from.

Values are parsed by the same `qwenfit.units` functions on every face, so a bad value raises the
library's one-line `UsageError`. `failure` answers an exception with the HTTP status and exit
code of `errors.ERROR_TABLE`.

Over 400 lines because the request models, the one machine construction and one handler per
command live together: the handlers are the contract every face shares.

Model references: the CLI reads any local file (and the Hub with `--online`); the service reads
only the spec table's names, or with `allow_dir` paths *below* that folder (resolved, symlinks
followed, then checked). A client never makes the server read one of its other files.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from qwenfit.errors import UnknownModelError, UsageError, exit_code_and_status
from qwenfit.errors import validation_message as describe
from qwenfit.hardware import Machine
from qwenfit.settings import (
    COMMANDS,
    CONFIG,
    MAX_MODELS,
    MAX_SIZE,
    MAX_TEXT,
    Setting,
    settings_of,
)
from qwenfit.specs import ModelSpec, SpecTable

if TYPE_CHECKING:
    from qwenfit.fit import CheckResult
    from qwenfit.fleet import FleetResult
    from qwenfit.memory import Estimate, SweepResult
    from qwenfit.recommender import LaunchPlan, RecommendResult

# Version 3 (qwenfit 0.4): model records carry the card's sampling presets. Version 2 (0.3):
# every command prints {"schema_version": N, "<command>": record}; version 1 printed recommend
# and launch flat. docs/api.md lists the changes.
SCHEMA_VERSION = 3
log = logging.getLogger("qwenfit.serve")

Text = Annotated[str, Field(max_length=MAX_TEXT)]
Size = Annotated[int, Field(ge=0, le=MAX_SIZE)] | Text


class Request(BaseModel):
    """Fields shared by every request; unknown fields are refused (a typo is not ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _annotation(s: Setting) -> Any:
    """The pydantic type of one declared option on the REST and MCP faces."""
    if s.kind == "choice":
        return Literal[s.choices]
    if s.kind == "int":
        return Annotated[int, Field(ge=s.minimum, le=s.maximum)]
    if s.kind == "flag":
        return bool
    if s.kind in ("size", "bandwidth", "margin"):
        return Size
    if s.kind == "context":
        return (
            Annotated[int, Field(ge=s.minimum, le=s.maximum)] | Annotated[str, Field(max_length=16)]
        )
    if s.kind == "speed":
        return Annotated[float, Field(ge=0, allow_inf_nan=False)]
    if s.kind == "texts":
        return Annotated[list[Text], Field(max_length=MAX_MODELS)]
    if s.kind == "machine":
        return Machine
    if s.kind == "document":
        return dict[str, Any]
    return Text  # text, reserve


REQUIRED = {("estimate", "model"), ("check", "model"), ("sweep", "model"), ("fleet", "nodes")}


@functools.cache
def request_model(command: str) -> type[Request]:
    """The request record of `command`, derived from its declared options."""
    fields: dict[str, Any] = {}
    for s in settings_of(command):
        kind = _annotation(s)
        if (command, s.field) in REQUIRED:
            fields[s.field] = (kind, Field(description=s.help))
        elif s.kind == "texts":
            fields[s.field] = (kind, Field(default_factory=list, description=s.help))
        elif s.default is None:
            fields[s.field] = (kind | None, Field(None, description=s.help))
        else:
            fields[s.field] = (kind, Field(s.default, description=s.help))
    name = command.capitalize() + "Request"
    model: type[Request] = create_model(name, __base__=Request, __doc__=_DOCS[command], **fields)
    return model


_DOCS = {
    "probe": "The machine (default: the server's own, probed) with the overrides applied.",
    "models": "The models of one release line, with sizes and sources.",
    "estimate": "Memory part by part, laid out on the machine (qwenfit estimate --json).",
    "sweep": "Memory, speed and fit at each context and KV type (estimate --sweep --json).",
    "check": "Does the configuration fit? Answered with fits false too (qwenfit check).",
    "recommend": "The best picks for the machine (qwenfit recommend --json).",
    "launch": "The commands that start a model, or the top pick (qwenfit launch --json).",
    "fleet": "Which node pool of a cluster runs which model, and its manifests (qwenfit fleet).",
}


def parse_request(command: str, values: dict[str, Any]) -> Request:
    """`values` as `command`'s request; a bad or unknown value is one UsageError line."""
    try:
        return request_model(command).model_validate(values)
    except ValidationError as e:
        raise UsageError(describe(e)) from None


def _document_model(command: str, record: Any) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "schema_version": (Literal[3], Field(description="3 since qwenfit 0.4 (2 in 0.3).")),
        KEYS[command]: (record, ...),
    }
    model: type[BaseModel] = create_model(
        command.capitalize() + "Document", __config__=ConfigDict(extra="forbid"), **fields
    )
    return model


# The key each command's document holds its record under.
KEYS = {
    "probe": "machine",
    "models": "models",
    "estimate": "estimate",
    "sweep": "sweep",
    "check": "check",
    "recommend": "recommend",
    "launch": "launch",
    "fleet": "fleet",
    "verify": "verify",  # the CLI's only: it reads runtimes on the user's own machine
}


def document_models() -> dict[str, type[BaseModel]]:
    """The record of every printed document, for its JSON Schema (tools/docgen.py)."""
    from qwenfit.fit import CheckResult
    from qwenfit.fleet import FleetResult
    from qwenfit.memory import Estimate, SweepResult
    from qwenfit.recommender import LaunchPlan, RecommendResult
    from qwenfit.verify import Verification

    records: dict[str, Any] = {
        "probe": Machine,
        "models": list[ModelSpec],
        "estimate": Estimate,
        "sweep": SweepResult,
        "check": CheckResult,
        "recommend": RecommendResult,
        "launch": LaunchPlan,
        "fleet": FleetResult,
        "verify": Verification,
    }
    return {command: _document_model(command, rec) for command, rec in records.items()}


def document(command: str, record: BaseModel | list[ModelSpec]) -> dict[str, Any]:
    """The one JSON envelope every face prints for `command`'s answer."""
    if isinstance(record, list):
        body: Any = [m.model_dump(mode="json") for m in record]
    else:
        body = record.model_dump(mode="json")
    return {"schema_version": SCHEMA_VERSION, KEYS[command]: body}


@dataclass(frozen=True)
class Failure:
    """An error as the service answers it: HTTP status, the CLI's exit code, one line."""

    status: int
    exit_code: int
    message: str

    def document(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "error": {"message": self.message, "exit_code": self.exit_code},
        }


def failure(e: BaseException) -> Failure:
    """What the service answers for `e`: `errors.ERROR_TABLE`'s status and exit code."""
    code, status = exit_code_and_status(e)
    if status == 500:
        return Failure(500, 1, "internal error (see the server log)")
    text = describe(e) if isinstance(e, ValidationError) else one_line(str(e))
    return Failure(status, code, text)


# An absolute path in a message: a slash that starts a token (not the one inside '80GB/s' or
# 'Qwen/Qwen3.5-9B'), up to a quote, a space or a closing bracket.
_ABSOLUTE = re.compile(r"""(?<![\w.~-])/[^\s'",)\]]*""")


def package_version() -> str:
    """qwenfit's installed version (the facade's `__version__`, which this stage cannot import)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qwenfit")
    except PackageNotFoundError:
        return "0+unknown"


def one_line(text: str) -> str:
    return " ".join(text.split())


def looks_like_path(ref: str) -> bool:
    """A file or folder reference rather than a model name (table names have no slash but
    their `Qwen/...` aliases, which the table matches first)."""
    return (
        any(c in ref for c in "/\\\x00")
        or ref.startswith((".", "~"))
        or ref.lower().endswith(".gguf")
    )


def _context(value: int | str | None) -> int | None:
    from qwenfit.units import parse_context

    return None if value is None else parse_context(value)


def _config(r: dict[str, Any]) -> dict[str, Any]:
    """The configuration keywords of the library's entry points, from a request's values."""
    out = {k: r[k] for k in CONFIG if k in r}
    out["context"] = _context(r.get("context"))  # "32k" or tokens
    return out


class Service:
    """The handlers, bound to one spec table and to what model references may name.

    `allow_dir`: the service's allow-list folder (None: spec-table names only). `local_files`:
    the CLI's way, any local file or folder, and the Hub with `online`.
    """

    def __init__(
        self,
        *,
        allow_dir: str | Path | None = None,
        table: SpecTable | None = None,
        local_files: bool = False,
        online: bool = False,
        on_machine: Callable[[Machine, int], None] | None = None,
    ):
        from qwenfit.specs import load_specs

        self.table = table or load_specs()
        self.local_files = local_files
        self.online = online
        self.on_machine = on_machine  # told each machine planned on, and its margin (the CLI)
        self.allow_dir = Path(allow_dir).resolve(strict=True) if allow_dir else None
        if self.allow_dir is not None and not self.allow_dir.is_dir():
            raise UsageError(f"--allow-dir {str(allow_dir)!r} is not a folder")

    def failure(self, e: BaseException) -> Failure:
        """`failure(e)` as a client may see it: no server paths (the allow-list folder becomes
        '.', any other absolute path '<path>'); an unexpected exception is logged here with
        its traceback under a fresh id, and the answer carries only that id."""
        f = failure(e)
        if f.status == 500:
            incident = secrets.token_hex(6)
            log.error("internal error %s", incident, exc_info=e)
            return Failure(500, 1, f"internal error {incident} (the server log has the details)")
        message = f.message
        if self.allow_dir is not None:
            root = str(self.allow_dir)
            message = message.replace(root + "/", "").replace(root, ".")
        return Failure(f.status, f.exit_code, _ABSOLUTE.sub("<path>", message))

    # --- inputs ---------------------------------------------------------------------------

    def machine(self, r: dict[str, Any]) -> Machine:
        """The one machine construction: stated hardware over a given machine, over the
        probed one (or over none when the statement is complete), with the reserve applied."""
        from qwenfit.hardware import with_overrides

        given = r.get("machine")
        if given is not None:
            base: Machine | None = given.model_copy(update={"source": "file"})
        elif (r.get("gpu") or r.get("vram") is not None) and r.get("ram") is not None:
            base = None  # fully hypothetical: no need to probe
        else:
            from qwenfit.hardware import probe

            base = probe()
        return with_overrides(
            base,
            gpu=r.get("gpu"),
            vram=r.get("vram"),
            ram=r.get("ram"),
            ram_bandwidth=r.get("ram_bandwidth"),
            reserve=r.get("reserve"),
            gpu_bandwidth=r.get("gpu_bandwidth"),
        )

    def planned(self, r: dict[str, Any]) -> tuple[Machine, int]:
        """The machine to plan on and the bytes to keep free, as --margin gives them
        (`fit.margin`: bytes on every pool, or a share of each pool)."""
        from qwenfit.fit import parse_margin

        machine, margin = parse_margin(r.get("margin", "1GiB")).apply(self.machine(r))
        if self.on_machine is not None:
            self.on_machine(machine, margin)
        return machine, margin

    def resolve(self, ref: str, mmproj: str | None = None) -> tuple[SpecTable, ModelSpec]:
        """A table model; other references as this service's rules allow (see the class)."""
        if self.local_files:
            from qwenfit.specs import resolve_model

            return resolve_model(ref, self.table, online=self.online, mmproj=mmproj)
        if mmproj is None:
            try:
                return self.table, self.table.get(ref)
            except UnknownModelError:
                if self.allow_dir is None and not looks_like_path(ref):
                    raise  # the table's own message, with its did-you-mean
        if self.allow_dir is None:
            what = f"mmproj {mmproj!r}" if mmproj else f"model {ref!r}"
            raise UsageError(
                f"{what}: this server reads no files named by a client; use a spec-table "
                "model name, or start it with 'qwenfit serve --allow-dir FOLDER'"
            )
        from qwenfit.inputs import confined
        from qwenfit.specs import resolve_model

        path = self.allowed_path(ref)
        mm = str(self.allowed_path(mmproj)) if mmproj else None
        with confined(self.allow_dir):  # every file read below resolves inside the folder
            return resolve_model(str(path), self.table, mmproj=mm)

    def allowed_path(self, ref: str) -> Path:
        """`ref` relative to the allow-list folder, refused if it resolves outside it."""
        assert self.allow_dir is not None
        if "\x00" in ref or ref.startswith("~"):
            raise UsageError(f"model {ref!r}: not a path below the allowed folder")
        path = (self.allow_dir / ref).resolve()
        if not path.is_relative_to(self.allow_dir):
            raise UsageError(f"model {ref!r}: outside the allowed folder")
        if not path.exists():
            raise UsageError(f"model {ref!r}: no such file or folder below the allowed folder")
        return path

    # --- handlers: each answers one command's request with its record -------------------

    def answer(self, command: str, values: dict[str, Any]) -> dict[str, Any]:
        """`command`'s JSON document for `values` (a request's fields): the one entry of every
        face."""
        return document(command, self.record(command, values))

    def record(self, command: str, values: dict[str, Any]) -> Any:
        """`command`'s answer as a record, for `values` checked against its request model."""
        if command not in COMMANDS:
            raise UsageError(f"unknown command {command!r}; allowed: {', '.join(COMMANDS)}")
        return self.handle(command, parse_request(command, values))

    def handle(self, command: str, request: Request) -> Any:
        """`command`'s answer for a request already validated by its request model (the REST
        routes receive one from FastAPI: no second validation)."""
        handler = getattr(self, command)
        return handler(dict(request))

    def models(self, r: dict[str, Any]) -> list[ModelSpec]:
        return self.table.family_models(r["family"])

    def gpus(self) -> dict[str, Any]:
        from qwenfit.hardware import gpu_catalog

        return {"schema_version": SCHEMA_VERSION, **gpu_catalog().model_dump(mode="json")}

    def probe(self, r: dict[str, Any]) -> Machine:
        machine = self.machine(r)
        if self.on_machine is not None:
            self.on_machine(machine, 0)
        return machine

    def estimate(self, r: dict[str, Any]) -> Estimate:
        from qwenfit.memory import estimate

        machine, margin = self.planned(r)
        table, spec = self.resolve(r["model"], r.get("mmproj"))
        return estimate(
            spec, **_config(r), machine=machine, nodes=r["nodes"], margin=margin, table=table
        )

    def check(self, r: dict[str, Any]) -> CheckResult:
        from qwenfit.fit import check

        disk = r.get("disk")
        if disk is not None and not self.local_files and looks_like_path(disk):
            raise UsageError(
                f"disk {disk!r}: this server checks no folder named by a client; give a free "
                "size such as 200GB"
            )
        machine, margin = self.planned(r)
        table, spec = self.resolve(r["model"], r.get("mmproj"))
        return check(
            spec,
            machine,
            **_config(r),
            allow_offload=r["allow_offload"],
            nodes=r["nodes"],
            margin=margin,
            table=table,
            disk=disk,
            # The local disk matters for a probed machine; a planned one only with a disk.
            check_download=machine.source == "probe",
            download_speed=self._speed(r.get("download_speed")),
        )

    @staticmethod
    def _speed(value: int | str | None) -> int | None:
        from qwenfit.units import parse_bandwidth

        return None if value is None else parse_bandwidth(value)

    def _models(self, refs: list[str]) -> tuple[SpecTable, list[str | ModelSpec]]:
        table = self.table
        only: list[str | ModelSpec] = []
        for ref in refs:
            t, spec = self.resolve(ref)
            if t is not self.table:
                table = t  # a local checkpoint appended to the table
            only.append(spec.name)
        return table, only

    def recommend(self, r: dict[str, Any]) -> RecommendResult:
        from qwenfit.recommender import recommend

        machine, margin = self.planned(r)
        table, only = self._models(r["models"])
        return recommend(
            machine,
            **_config(r),
            family=r["family"],
            task=r["task"],
            min_speed=r.get("min_speed"),
            prefer=r["prefer"],
            allow_offload=r["allow_offload"],
            nodes=r["nodes"],
            margin=margin,
            limit=r["limit"],
            models=only or None,
            table=table,
        )

    def launch(self, r: dict[str, Any]) -> LaunchPlan:
        from qwenfit.recommender import launch_plan

        machine, margin = self.planned(r)
        table, spec = self.table, None
        if r.get("model") is not None:
            table, spec = self.resolve(r["model"], r.get("mmproj"))
        return launch_plan(
            spec,
            machine,
            **_config(r),
            task=r["task"],
            family=r["family"],
            min_speed=r.get("min_speed"),
            prefer=r["prefer"],
            allow_offload=r["allow_offload"],
            nodes=r["nodes"],
            margin=margin,
            mmproj=r.get("mmproj"),
            table=table,
        )

    def sweep(self, r: dict[str, Any]) -> SweepResult:
        """Memory, speed and fit at each context (4k, 8k, ... up to the native context, or
        YaRN's) and KV cache type (one with kv_cache)."""
        from qwenfit.memory import sweep

        machine, margin = self.planned(r)
        table, spec = self.resolve(r["model"], r.get("mmproj"))
        kv = r.get("kv_cache")
        return sweep(
            spec,
            kv_types=[kv] if kv else None,
            machine=machine,
            runtime=r.get("runtime"),
            quant=r.get("quant"),
            parallel=r["parallel"],
            text_only=r["text_only"],
            yarn=r["yarn"],
            allow_offload=r["allow_offload"],
            margin=margin,
            table=table,
        )

    def fleet(self, r: dict[str, Any]) -> FleetResult:
        """The plan of every node pool of a cluster, from its node (and pod) lists."""
        from qwenfit.fleet import Settings, fleet

        return fleet(
            r["nodes"],
            r.get("model"),
            task=r["task"],
            runtime=r.get("runtime"),
            context=_context(r.get("context")),
            pods=r.get("pods"),
            pool=r.get("pool"),
            settings=Settings(
                name=r.get("name"),
                namespace=r["namespace"],
                image_tag=r.get("image_tag"),
                cache_claim=r.get("cache_claim"),
            ),
            table=self.table,
        )
