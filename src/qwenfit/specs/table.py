"""The spec table: pydantic models for `data/model_specs.json`, loading, and model-name lookup.

The table is reviewed data. Validation is strict (`extra="forbid"`, cross-field checks) so a
hand-edit that breaks it fails with one line naming the file and the field, never a traceback.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from qwenfit.adapters import OLLAMA, RUNTIMES, Format, RuntimeName, adapter
from qwenfit.datafiles import data_text
from qwenfit.errors import SpecError, UnknownModelError, UsageError, validation_message
from qwenfit.inputs import parse_json, read_text, shown
from qwenfit.specs.architecture import Architecture, Strict
from qwenfit.specs.sampling import REQUIRED_MODES, SAMPLING_KEYS, ModelSampling

# Ollama's library tags are their own artifact format (a tag, not a repo).
TAG_FORMAT: Format = adapter(OLLAMA).format
# Release lines on the Qwen3.5 architecture (same model_type, layer pattern and memory model).
Family = Literal["qwen3.5", "qwen3.6", "qwen3.8"]
FAMILIES: tuple[Family, ...] = ("qwen3.5", "qwen3.6", "qwen3.8")
DEFAULT_FAMILY: Family = "qwen3.5"


class Source(Strict):
    """Where numbers come from: a config file, model card, runtime source file or our own script."""

    title: str
    url: str | None = None
    path: str | None = Field(None, description="A file in this repository (scripts, fixtures).")
    note: str | None = None


class ParamCounts(Strict):
    """Exact parameter counts (checked against transformers' classes on the meta device)."""

    text: int = Field(gt=0, description="Language model incl. embedding and lm_head (tied once).")
    text_active: int = Field(gt=0, description="Read per token: routed experts only top-k.")
    embedding: int = Field(gt=0)
    vision: int = Field(gt=0)
    mtp: int = Field(ge=0)
    total: int = Field(gt=0, description="text + vision + mtp: everything in the checkpoint.")
    source: str

    @model_validator(mode="after")
    def _adds_up(self) -> ParamCounts:
        if self.text_active > self.text:
            raise ValueError("text_active exceeds text")
        if self.total != self.text + self.vision + self.mtp:
            raise ValueError("total must equal text + vision + mtp")
        return self


class Context(Strict):
    native: int = Field(gt=0, description="max_position_embeddings")
    extended: int | None = Field(None, gt=0, description="With YaRN rope scaling, per model card.")
    source: str


class Artifact(Strict):
    """One downloadable form of a model at one precision, with the bytes each runtime loads."""

    precision: str
    format: Format
    repo: str | None = Field(None, description="Hugging Face repo id (safetensors, gguf, mlx).")
    tag: str | None = Field(None, description="Ollama tag (format ollama).")
    tag_aliases: list[str] = Field(
        default_factory=list,
        description="Other Ollama library spellings of the same build (format ollama).",
    )
    text_bytes: int = Field(gt=0, description="Decoder weights as loaded, MTP excluded.")
    vision_bytes: int = Field(gt=0, description="Vision tower (the mmproj file for GGUF).")
    mtp_bytes: int | None = Field(None, ge=0, description="MTP block, when the artifact has it.")
    mtp_repo: str | None = Field(
        None,
        description="GGUF repo whose files carry the MTP block (blk.N.nextn.*), when it is not "
        "`repo`; llama-server --spec-type draft-mtp needs those tensors in the loaded file.",
    )
    download_bytes: int | None = Field(None, gt=0)
    exact: bool = Field(description="True: exact bytes; false: approximate (see source).")
    source: str


class QualityScores(Strict):
    """Benchmark scores from the model card, used to rank sizes."""

    scores: dict[str, float]
    source: str


class ModelSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/\-]*$")
    family: Family = Field(DEFAULT_FAMILY, description="Release line: qwen3.5, qwen3.6, qwen3.8.")
    display_name: str
    hf_repo: str
    model_type: Literal["qwen3_5", "qwen3_5_moe"]
    transformers_class: Literal[
        "Qwen3_5ForConditionalGeneration", "Qwen3_5MoeForConditionalGeneration"
    ] = Field(description="What AutoModelForImageTextToText builds for this config.")
    released: str
    aliases: list[str] = Field(default_factory=list)
    architecture: Architecture
    params: ParamCounts
    context: Context
    artifacts: list[Artifact]
    quality: QualityScores | None = None
    sampling: ModelSampling | None = Field(
        None, description="The card's presets; None (a checkpoint read from disk): the family's."
    )

    @property
    def is_moe(self) -> bool:
        return self.architecture.moe is not None

    @property
    def architecture_key(self) -> str:
        """The architecture as one key, equal for releases of one architecture (Qwen3.5-27B,
        Qwen3.6-27B, Qwen3.8-27B): the memory and speed models read nothing else."""
        return self.architecture.model_dump_json(exclude={"source"})

    @property
    def size_label(self) -> str:
        """'9b', '35b-a3b': the part of the name after the family ('qwen3.5-', 'qwen3.6-')."""
        return self.name.removeprefix(f"{self.family}-")

    def artifact(self, precision: str, fmt: Format) -> Artifact | None:
        for a in self.artifacts:
            if a.precision == precision and a.format == fmt:
                return a
        return None

    def precisions(self, fmt: Format) -> list[str]:
        return [a.precision for a in self.artifacts if a.format == fmt]

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if (self.model_type == "qwen3_5_moe") != (self.architecture.moe is not None):
            raise ValueError("model_type qwen3_5_moe requires architecture.moe, and only it")
        if ("Moe" in self.transformers_class) != (self.model_type == "qwen3_5_moe"):
            raise ValueError(
                f"transformers_class {self.transformers_class} does not match "
                f"model_type {self.model_type}"
            )
        if self.context.native != self.architecture.max_position_embeddings:
            raise ValueError("context.native must equal architecture.max_position_embeddings")
        seen = set()
        for a in self.artifacts:
            key = (a.precision, a.format)
            if key in seen:
                raise ValueError(f"artifact {a.precision}/{a.format} listed twice")
            seen.add(key)
            if a.format == TAG_FORMAT and not a.tag:
                raise ValueError(f"{a.format} artifact {a.precision} needs a tag")
            if a.format != TAG_FORMAT and not a.repo:
                raise ValueError(f"{a.format} artifact {a.precision} needs a repo")
        return self


class PrecisionInfo(Strict):
    label: str
    kind: Literal["float", "fp8", "int4", "gguf", "mlx"]
    quality_loss: float = Field(
        ge=0, description="Relative quality loss vs BF16 used in ranking (0 = none)."
    )
    quality_source: str


# The KV cache types the memory model sizes (memory/runtimes.py KV_BYTES_PER_32; mlx-q8 and
# mlx-q4 are mlx-lm's --kv-bits 8 / 4, memory/mlx.py MLX_KV_BITS).
KVCacheType = Literal["f16", "bf16", "q8_0", "q4_0", "fp8", "mlx-q8", "mlx-q4"]


class RuntimeInfo(Strict):
    formats: list[Format]
    kv_cache_types: list[KVCacheType]
    min_version: str
    source: str


class SpecTable(Strict):
    schema_version: Literal[1]
    family: str
    sources: dict[str, Source]
    precisions: dict[str, PrecisionInfo]
    runtimes: dict[RuntimeName, RuntimeInfo]
    sampling: dict[str, dict[str, float]]
    sampling_source: str
    models: list[ModelSpec]

    @model_validator(mode="after")
    def _references_exist(self) -> SpecTable:
        names: set[str] = set()
        for m in self.models:
            for n in (m.name, *m.aliases):
                key = _normalize(n)
                if key in names:
                    raise ValueError(f"model name or alias {n!r} is not unique")
                names.add(key)
            refs = [m.architecture.source, m.params.source, m.context.source]
            refs += [a.source for a in m.artifacts]
            if m.quality:
                refs.append(m.quality.source)
            if m.sampling:
                refs.append(m.sampling.source)
                self._family_presets_exist(m)
            for a in m.artifacts:
                if a.precision not in self.precisions:
                    raise ValueError(f"{m.name}: artifact precision {a.precision!r} is undefined")
            for r in refs:
                if r not in self.sources:
                    raise ValueError(f"{m.name}: source {r!r} is not in sources")
        for p in self.precisions.values():
            if p.quality_source not in self.sources:
                raise ValueError(f"source {p.quality_source!r} is not in sources")
        for info in self.runtimes.values():
            if info.source not in self.sources:
                raise ValueError(f"source {info.source!r} is not in sources")
        if self.sampling_source not in self.sources:
            raise ValueError(f"source {self.sampling_source!r} is not in sources")
        return self

    def _family_presets_exist(self, m: ModelSpec) -> None:
        assert m.sampling is not None
        for mode, inh in m.sampling.inherits.items():
            if inh.source == "family" and inh.preset not in self.sampling:
                raise ValueError(
                    f"{m.name}: sampling {mode} inherits family preset {inh.preset!r}, "
                    "which the table does not define"
                )

    def family_models(self, family: str = DEFAULT_FAMILY) -> list[ModelSpec]:
        """The models of one release line, or of all with `family="all"`."""
        if family == "all":
            return list(self.models)
        if family not in FAMILIES:
            raise UnknownModelError(
                f"unknown family {family!r}; allowed: {', '.join(FAMILIES)}, all"
            )
        return [m for m in self.models if m.family == family]

    def newer_same_shape(self, spec: ModelSpec) -> list[ModelSpec]:
        """Later releases with exactly the same architecture (so the same memory), newest first."""
        same = [
            m
            for m in self.models
            if m.released > spec.released and m.architecture_key == spec.architecture_key
        ]
        return sorted(same, key=lambda m: m.released, reverse=True)

    @model_validator(mode="after")
    def _complete(self) -> SpecTable:
        """What every command needs: a model, every runtime, its KV types, the presets."""
        if not self.models:
            raise ValueError("models: the table needs at least one model")
        missing = [r for r in RUNTIMES if r not in self.runtimes]
        if missing:
            raise ValueError(f"runtimes: {missing[0]!r} is missing; needed: {', '.join(RUNTIMES)}")
        for name, info in self.runtimes.items():
            if not info.kv_cache_types:
                raise ValueError(f"runtimes.{name}.kv_cache_types: needs at least one type")
            if not info.formats:
                raise ValueError(f"runtimes.{name}.formats: needs at least one format")
        for preset in REQUIRED_MODES:
            if preset not in self.sampling:
                raise ValueError(f"sampling: preset {preset!r} is missing")
            missing_keys = [k for k in SAMPLING_KEYS if k not in self.sampling[preset]]
            if missing_keys:
                raise ValueError(f"sampling.{preset}: {missing_keys[0]!r} is missing")
        return self

    def get(self, name: str) -> ModelSpec:
        """Find a model by name or alias: '9b', 'Qwen3.5-9B', 'Qwen/Qwen3.5-9B', 'qwen3.6:27b'.

        A bare size ('27b') means the Qwen3.5 model, as the product promises; newer release
        lines are named with their family ('qwen3.6-27b').
        """
        if not isinstance(name, str):
            raise UsageError(f"invalid model {name!r:.60}: must be a model name (a string)")
        for m in self.models:  # the stages above pass canonical names: no normalising needed
            if m.name == name:
                return m
        key = _normalize(name)
        for m in self.models:
            if key in {_normalize(n) for n in (m.name, *m.aliases, *_family_aliases(m))}:
                return m
        for m in self.models:
            if m.family == DEFAULT_FAMILY and key in {_normalize(n) for n in _bare_aliases(m)}:
                return m
        choices = [m.name for m in self.models]
        close = difflib.get_close_matches(name.lower(), choices, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UnknownModelError(f"unknown model {name!r}{hint}; known: {', '.join(choices)}")


def _family_aliases(m: ModelSpec) -> tuple[str, ...]:
    size = m.size_label
    return (
        m.display_name,
        m.hf_repo,
        f"{m.family}:{size}",
        f"{m.family}:{size.split('-')[0]}",
        f"{m.family}-{size.split('-')[0]}",
    )


def _bare_aliases(m: ModelSpec) -> tuple[str, ...]:
    """Sizes without a family: '9b', '35b-a3b' (only the default family answers them)."""
    size = m.size_label
    return (size,)


def _normalize(name: str) -> str:
    return name.strip().lower()


def _parse_table(text: str, origin: str) -> SpecTable:
    raw = parse_json(text, what="spec table", origin=origin, error=SpecError)
    try:
        return SpecTable.model_validate(raw)
    except ValidationError as e:
        raise SpecError(f"{origin}: {validation_message(e)}") from None


@functools.cache
def _packaged_table() -> SpecTable:
    return _parse_table(data_text("model_specs.json"), "model_specs.json")


def load_specs(path: str | Path | None = None) -> SpecTable:
    """Load the shipped spec table, or a reviewed copy at `path`.

    Raises:
        SpecError: the file is missing, not JSON, or fails validation (message names the field).
    """
    if path is None:
        return _packaged_table()
    if not isinstance(path, (str, Path)):
        raise UsageError(f"invalid spec table path {path!r}: must be a str or Path")
    text = read_text(path, what="spec table", error=SpecError)
    return _parse_table(text, shown(path))
