"""What the REST API and the MCP server both answer, without a web framework.

Each request model mirrors one CLI command's options (same names, `kv_cache` for `--kv-cache`;
sizes as the CLI takes them, `"24GB"`, or as integer bytes; `context` as tokens or `"32k"`).
Each handler returns the JSON document that command prints with `--json`, so a client can switch
between `qwenfit ... --json` and the service without changing its parser.

Values are parsed by the same `qwenfit.units` functions as the CLI, so a bad value raises the
library's one-line `UsageError`. `error_document` is the one table from an exception to an HTTP
status and the exit code the CLI would have given.

Model references: without an allow-list folder only the spec table's names and aliases are
served; a client never makes the server read one of its files. With `allow_dir`, any other
reference is a path *below* that folder (resolved, symlinks followed, then checked).

Over 400 lines because every request record of the REST API and the MCP tools is defined here
once, next to the handler that answers it.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qwenfit.errors import NoFitError, QwenfitError, UnknownModelError, UsageError
from qwenfit.hardware.machine import Machine
from qwenfit.launch.common import Task
from qwenfit.specs.table import ModelSpec, SpecTable

SCHEMA_VERSION = 1
log = logging.getLogger("qwenfit.serve")
MAX_TEXT = 200  # characters in any string field: model refs, GPU names, sizes
MAX_MODELS = 16  # models a recommend request may restrict itself to

Text = Annotated[str, Field(max_length=MAX_TEXT)]
Size = Annotated[int, Field(ge=0, le=1 << 60)] | Text
ContextValue = Annotated[int, Field(ge=1, le=1 << 24)] | Annotated[str, Field(max_length=16)]


class Request(BaseModel):
    """Fields shared by every request; unknown fields are refused (a typo is not ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Hardware(Request):
    """The machine to plan for; none given: the server's own, probed per request."""

    gpu: Text | None = Field(
        None, description='A GPU from the catalog (GET /v1/gpus), e.g. "RTX 4090" or "2x H100".'
    )
    vram: Size | None = Field(
        None, description="Free memory of one GPU (or of each --gpu): 24GB, 24GiB, bytes; 0: none."
    )
    ram: Size | None = Field(None, description="Usable RAM: 64GB, 64GiB or bytes.")
    ram_bandwidth: Size | None = Field(None, description="RAM bandwidth: 80GB/s or bytes/s.")
    machine: Machine | None = Field(
        None, description="A machine as GET /v1/probe returns it (the `machine` object)."
    )


class Settings(Hardware):
    """The configuration options of estimate, check and launch (CLI names)."""

    runtime: Text | None = Field(None, description="llama.cpp, ollama, vllm or transformers.")
    quant: Text | None = Field(None, description="Precision: q4_k_m, q8_0, bf16, fp8, ...")
    context: ContextValue | None = Field(None, description="Tokens per sequence: 32768, '32k'.")
    kv_cache: Text | None = Field(None, description="KV cache type: f16, bf16, q8_0, q4_0, fp8.")
    parallel: int = Field(1, ge=1, le=4096, description="Sequences served at once.")
    ubatch: int | None = Field(None, ge=1, le=65536, description="llama.cpp micro-batch.")
    flash_attn: Literal["auto", "on", "off"] = "auto"
    text_only: bool = Field(False, description="Leave the vision tower out.")
    mtp: bool = Field(False, description="MTP speculative decoding (llama.cpp, vLLM).")
    nodes: int = Field(1, ge=1, le=1024, description="Machines like this one (vLLM + Ray).")

    def settings(self) -> dict[str, Any]:
        from qwenfit.units import parse_context

        context = None if self.context is None else parse_context(self.context)
        return {
            "runtime": self.runtime,
            "quant": self.quant,
            "context": context,
            "kv_cache": self.kv_cache,
            "parallel": self.parallel,
            "ubatch": self.ubatch,
            "flash_attn": self.flash_attn,
            "text_only": self.text_only,
            "mtp": self.mtp,
        }


class ModelRef(Request):
    model: Text = Field(description="A spec-table name or alias (9b, 35b-a3b, Qwen/Qwen3.5-27B).")
    mmproj: Text | None = Field(
        None, description="Vision projector GGUF for a local GGUF (only with --allow-dir)."
    )


class EstimateRequest(Settings, ModelRef):
    """POST /v1/estimate: what `qwenfit estimate MODEL --json` prints."""


class CheckRequest(Settings, ModelRef):
    """POST /v1/check: what `qwenfit check MODEL --json` prints; 200 with fits false too."""

    margin: Size = Field("1GiB", description="Memory kept free per pool: 1GiB, 10%, bytes.")
    allow_offload: bool = Field(False, description="Accept experts or layers in RAM.")


class LaunchRequest(Settings):
    """POST /v1/launch: the commands that start MODEL (default: the top recommendation)."""

    model: Text | None = Field(None, description="A spec-table name; none: the top pick.")
    mmproj: Text | None = None
    task: Task = Field(
        "chat", description="chat, agent (tool calling), code or vision: flags and sampling."
    )
    margin: Size = Field("1GiB", description="Memory kept free per pool: 1GiB, 10%, bytes.")
    allow_offload: bool = Field(False, description="Accept experts or layers in RAM.")


class RecommendRequest(Hardware):
    """POST /v1/recommend: what `qwenfit recommend --json` prints; 200 with no picks too."""

    runtime: Text | None = None
    context: ContextValue | None = None
    kv_cache: Text | None = None
    parallel: int = Field(1, ge=1, le=4096)
    flash_attn: Literal["auto", "on", "off"] = "auto"
    text_only: bool = False
    mtp: bool = Field(False, description="Size every pick with MTP speculative decoding.")
    family: Text = Field(
        "qwen3.5", description="Release line: qwen3.5, qwen3.6, qwen3.8 or all."
    )
    task: Task = "chat"
    min_speed: float | None = Field(None, ge=0, description="Minimum decode tokens/s.")
    limit: int = Field(5, ge=1, le=1000, description="How many picks (the CLI's -n).")
    models: list[Text] = Field(
        default_factory=list, max_length=MAX_MODELS, description="Only these models (--model)."
    )
    allow_offload: bool = False
    nodes: int = Field(1, ge=1, le=1024)

    @field_validator("min_speed")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number of tokens per second")
        return v


class SweepRequest(Hardware):
    """POST /v1/sweep: memory, speed and fit of one configuration at each context and KV type
    (`qwenfit estimate MODEL --sweep --json`)."""

    model: Text
    runtime: Text | None = None
    quant: Text | None = None
    kv_caches: list[Text] | None = Field(
        None,
        max_length=8,
        description="KV types to sweep; none: every type the runtime offers.",
    )
    parallel: int = Field(1, ge=1, le=4096)
    text_only: bool = False
    yarn: bool = Field(False, description="Go on past the native context with YaRN.")
    margin: Size = "1GiB"
    allow_offload: bool = False


class ProbeRequest(Hardware):
    """GET /v1/probe takes no body; the MCP tool accepts the hardware overrides."""


class ModelsRequest(Request):
    """GET /v1/models?family=...: what `qwenfit models --family F --json` prints."""

    family: Text = Field(
        "qwen3.5", description="Release line: qwen3.5, qwen3.6, qwen3.8 or all."
    )


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


def package_version() -> str:
    """qwenfit's installed version (the facade's `__version__`, which this stage cannot import)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qwenfit")
    except PackageNotFoundError:
        return "0+unknown"


def one_line(text: str) -> str:
    return " ".join(text.split())


def location(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """'context' rather than pydantic's 'body.context.constrained-int' (union member tags)."""
    tags = {"int", "str", "float", "bool", "none", "body", "list", "dict"}
    kept = [str(x) for x in loc if not (isinstance(x, str) and (x in tags or "-" in x or "[" in x))]
    return ".".join(kept) or "body"


def validation_message(e: ValidationError) -> str:
    """Pydantic's first complaint as one line naming the field: 'parallel: Input should be ...'."""
    first = e.errors()[0]
    loc = location(first["loc"])
    extra = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return one_line(f"{loc}: {first['msg']}{extra}")[:500]


def failure(e: BaseException) -> Failure:
    """The one table from an exception to what the service answers."""
    if isinstance(e, ValidationError):
        return Failure(422, 2, validation_message(e))
    if isinstance(e, UsageError):
        return Failure(400, 2, one_line(str(e)))
    if isinstance(e, NoFitError):
        return Failure(409, 3, one_line(str(e)))
    if isinstance(e, QwenfitError):
        return Failure(422, 1, one_line(str(e)))
    return Failure(500, 1, "internal error (see the server log)")


# An absolute path in a message: a slash that starts a token (not the one inside '80GB/s' or
# 'Qwen/Qwen3.5-9B'), up to a quote, a space or a closing bracket.
_ABSOLUTE = re.compile(r"""(?<![\w.~-])/[^\s'",)\]]*""")


def looks_like_path(ref: str) -> bool:
    """A file or folder reference rather than a model name (table names have no slash but
    their `Qwen/...` aliases, which the table matches first)."""
    return (
        any(c in ref for c in "/\\\x00")
        or ref.startswith((".", "~"))
        or ref.lower().endswith(".gguf")
    )


class Service:
    """The handlers, bound to one spec table and one allow-list folder (or none)."""

    def __init__(self, *, allow_dir: str | Path | None = None, table: SpecTable | None = None):
        from qwenfit.specs.table import load_specs

        self.table = table or load_specs()
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

    def machine(self, hw: Hardware) -> Machine:
        """As the CLI builds it: stated hardware over the probed machine (or over none)."""
        from qwenfit.hardware.catalog import with_overrides

        if hw.machine is not None:
            base: Machine | None = hw.machine.model_copy(update={"source": "file"})
        elif (hw.gpu or hw.vram is not None) and hw.ram is not None:
            base = None  # fully hypothetical: no need to probe
        else:
            from qwenfit.hardware.probing import probe

            base = probe()
        return with_overrides(
            base, gpu=hw.gpu, vram=hw.vram, ram=hw.ram, ram_bandwidth=hw.ram_bandwidth
        )

    def resolve(self, ref: str, mmproj: str | None = None) -> tuple[SpecTable, ModelSpec]:
        """A table model; other references only as files below the allow-list folder."""
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
        from qwenfit.specs.checkpoints.resolve import resolve_model

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

    def planned(self, req: Hardware, margin: str | int) -> tuple[Machine, int]:
        """The machine to plan on and the bytes to keep free, as the CLI's --margin gives them
        (`fit.margin`: bytes on every pool, or a share of each pool)."""
        from qwenfit.fit.margin import parse_margin

        return parse_margin(margin).apply(self.machine(req))

    # --- handlers: each returns the CLI's --json document ------------------------------

    def models(self, req: ModelsRequest | None = None) -> dict[str, Any]:
        family = (req or ModelsRequest()).family
        return {
            "schema_version": SCHEMA_VERSION,
            "models": [m.model_dump(mode="json") for m in self.table.family_models(family)],
        }

    def gpus(self) -> dict[str, Any]:
        from qwenfit.hardware.catalog import gpu_catalog

        return {"schema_version": SCHEMA_VERSION, **gpu_catalog().model_dump(mode="json")}

    def probe(self, req: ProbeRequest | None = None) -> dict[str, Any]:
        m = self.machine(req or ProbeRequest())
        return {"schema_version": SCHEMA_VERSION, "machine": m.model_dump(mode="json")}

    def estimate(self, req: EstimateRequest) -> dict[str, Any]:
        from qwenfit.memory.estimator import estimate

        machine = self.machine(req)
        table, spec = self.resolve(req.model, req.mmproj)
        est = estimate(spec, **req.settings(), machine=machine, nodes=req.nodes, table=table)
        return {"schema_version": SCHEMA_VERSION, "estimate": est.model_dump(mode="json")}

    def check(self, req: CheckRequest) -> dict[str, Any]:
        from qwenfit.fit.preflight import check

        machine, margin = self.planned(req, req.margin)
        table, spec = self.resolve(req.model, req.mmproj)
        result = check(
            spec,
            machine,
            **req.settings(),
            allow_offload=req.allow_offload,
            nodes=req.nodes,
            margin=margin,
            table=table,
        )
        return {"schema_version": SCHEMA_VERSION, "check": result.model_dump(mode="json")}

    def recommend(self, req: RecommendRequest) -> dict[str, Any]:
        from qwenfit.recommender.ranking import recommend
        from qwenfit.units import parse_context

        machine = self.machine(req)
        table = self.table
        only = []
        for ref in req.models:
            t, spec = self.resolve(ref)
            if t is not self.table:
                table = t  # a local checkpoint appended to the table
            only.append(spec.name)
        result = recommend(
            machine,
            runtime=req.runtime,
            context=None if req.context is None else parse_context(req.context),
            kv_cache=req.kv_cache,
            parallel=req.parallel,
            flash_attn=req.flash_attn,
            text_only=req.text_only,
            mtp=req.mtp,
            family=req.family,
            task=req.task,
            min_speed=req.min_speed,
            allow_offload=req.allow_offload,
            nodes=req.nodes,
            limit=req.limit,
            models=only or None,
            table=table,
        )
        return result.model_dump(mode="json")  # as the CLI: machine, recommendations, ... on top

    def launch(self, req: LaunchRequest) -> dict[str, Any]:
        from qwenfit.recommender.launching import launch_plan

        machine, margin = self.planned(req, req.margin)
        table, spec = self.table, None
        if req.model is not None:
            table, spec = self.resolve(req.model, req.mmproj)
        plan = launch_plan(
            spec,
            machine,
            **req.settings(),
            task=req.task,
            allow_offload=req.allow_offload,
            nodes=req.nodes,
            margin=margin,
            mmproj=req.mmproj,
            table=table,
        )
        return plan.model_dump(mode="json")

    def sweep(self, req: SweepRequest) -> dict[str, Any]:
        """What `qwenfit estimate MODEL --sweep --json` prints: memory, speed and fit at each
        context (4k, 8k, ... up to the native context, or YaRN's) and KV cache type."""
        from qwenfit.memory.sweep import sweep

        machine, margin = self.planned(req, req.margin)
        table, spec = self.resolve(req.model)
        result = sweep(
            spec,
            kv_types=list(req.kv_caches) if req.kv_caches else None,
            machine=machine,
            runtime=req.runtime,
            quant=req.quant,
            parallel=req.parallel,
            text_only=req.text_only,
            yarn=req.yarn,
            allow_offload=req.allow_offload,
            margin=margin,
            table=table,
        )
        return {"schema_version": SCHEMA_VERSION, "sweep": result.model_dump(mode="json")}
