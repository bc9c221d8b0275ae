"""A `Summary` turned into a spec row (and any precision or source it needs) on a copy of the
table."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import ValidationError

from qwenfit.errors import BadFileError, UsageError, validation_message
from qwenfit.inputs import printable
from qwenfit.specs import arch
from qwenfit.specs.architecture import Architecture
from qwenfit.specs.checkpoints.config import architecture_from_config, build_arch
from qwenfit.specs.checkpoints.gguf import (
    bits_per_weight,
    gguf_fields,
    gguf_precision,
    vision_from_mmproj,
)
from qwenfit.specs.checkpoints.safetensors import safetensors_precision
from qwenfit.specs.checkpoints.summary import Summary
from qwenfit.specs.table import (
    Artifact,
    Context,
    ModelSpec,
    ParamCounts,
    PrecisionInfo,
    Source,
    SpecTable,
)


def ensure_precision(
    table: SpecTable, precision: str, fmt: Literal["safetensors", "gguf"]
) -> tuple[dict[str, PrecisionInfo], dict[str, Source]]:
    """Precisions and sources with `precision` defined: a new one borrows the nearest quality.

    Nearest: for GGUF types the known type with the closest bits per weight; for float
    checkpoints BF16 (no loss); for other int4 methods GPTQ-Int4.
    """
    precisions, sources = dict(table.precisions), dict(table.sources)
    if precision in precisions:
        return precisions, sources
    kind: Literal["float", "fp8", "int4", "gguf"]
    if fmt == "gguf":
        kind = "gguf"
        mine = bits_per_weight(precision)
        known = [
            (abs((bits_per_weight(p) or 99.0) - (mine or 16.0)), p)
            for p, info in precisions.items()
            if info.kind == "gguf"
        ]
        nearest = min(known)[1] if known else None
    elif precision.endswith("-int4"):
        kind, nearest = "int4", "gptq-int4" if "gptq-int4" in precisions else None
    else:
        kind, nearest = "float", "bf16" if "bf16" in precisions else None
    loss = precisions[nearest].quality_loss if nearest else 0.0
    key = f"precision-{precision}"
    sources[key] = Source(
        title=f"No published accuracy for {precision.upper()}; quality loss taken from "
        f"{nearest.upper() if nearest else 'none (0)'}, the nearest known type",
        note="added by qwenfit when it read a checkpoint of this type",
    )
    precisions[precision] = PrecisionInfo(
        label=precision.upper(), kind=kind, quality_loss=loss, quality_source=key
    )
    return precisions, sources


def add_to_table(
    table: SpecTable, s: Summary, ref: str, *, name: str, repo: str | None = None
) -> tuple[SpecTable, ModelSpec]:
    """Build the spec from a summary and return a copy of the table with it appended.

    Raises BadFileError when the numbers the files hold do not make a valid spec row
    (parameter counts that do not add up, zero bytes)."""
    try:
        return _add_to_table(table, s, ref, name=name, repo=repo)
    except ValidationError as e:
        what = f"cannot describe this checkpoint ({validation_message(e)})"
        raise BadFileError(f"{printable(ref)}: {what}") from None


def _add_to_table(
    table: SpecTable, s: Summary, ref: str, *, name: str, repo: str | None = None
) -> tuple[SpecTable, ModelSpec]:
    digest = hashlib.sha256(f"{s.format}:{s.origin}".encode()).hexdigest()[:10]
    source_key = f"checkpoint-{digest}"
    spec_arch, vision_known = _architecture(s, table, source_key)
    params = _params(s, spec_arch, source_key)
    precision = gguf_precision(s.config, s) if s.format == "gguf" else safetensors_precision(s)
    _check_tensors_match(s, spec_arch, ref)
    precisions, sources = ensure_precision(table, precision, s.format)
    vision_exact = s.vision.bytes > 0
    vision_bytes = s.vision.bytes if vision_exact else 2 * params.vision
    is_url = s.origin.startswith(("http://", "https://"))
    what = "config.json and safetensors headers" if s.format == "safetensors" else "GGUF header"
    note = None
    if not vision_exact:
        note = (
            "no vision tensors in these files: vision numbers are the official tower's "
            "(formula, BF16/F16 bytes); use --text-only for a text-only model"
            if not vision_known
            else "no vision tensors in these files: vision bytes are 2 x the config's vision "
            "parameters"
        )
    sources[source_key] = Source(
        title=f"Checkpoint {ref} ({what}, read by qwenfit)",
        url=s.origin if is_url else None,
        path=None if is_url else s.origin,
        note=note,
    )
    artifact = Artifact(
        precision=precision,
        format=s.format,
        repo=repo or ref,
        text_bytes=s.text.bytes,
        vision_bytes=vision_bytes,
        mtp_bytes=s.mtp.bytes or None,
        download_bytes=s.download_bytes or None,
        exact=vision_exact,
        source=source_key,
    )
    model_type = "qwen3_5_moe" if spec_arch.moe is not None else "qwen3_5"
    base = name.rsplit("/", 1)[-1]
    try:
        spec = ModelSpec(
            name=name,
            display_name=base,
            hf_repo=repo or ref,
            model_type=model_type,
            transformers_class="Qwen3_5MoeForConditionalGeneration"
            if model_type == "qwen3_5_moe"
            else "Qwen3_5ForConditionalGeneration",
            released="unknown",
            aliases=[ref] if ref.strip().lower() != name.lower() else [],
            architecture=spec_arch,
            params=params,
            context=Context(
                native=spec_arch.max_position_embeddings, extended=None, source=source_key
            ),
            artifacts=[artifact],
        )
    except ValidationError as e:
        msg = validation_message(e)
        raise UsageError(f"{printable(ref)}: cannot describe this checkpoint ({msg})") from None
    models = [m for m in table.models if m.name != name]
    new = table.model_copy(
        update={"models": [*models, spec], "precisions": precisions, "sources": sources}
    )
    try:  # re-validate the cross references of the copied table
        new = SpecTable.model_validate(new.model_dump())
    except ValidationError as e:
        raise UsageError(f"{printable(ref)}: {validation_message(e)}") from None
    return new, spec


# How far the parameters counted from the tensors may be from what the config describes. Real
# checkpoints agree exactly (the official ones: to the parameter); a larger gap means files that
# do not belong together, and the memory model would split bytes it does not have.
PARAM_TOLERANCE = 0.10


def _check_tensors_match(s: Summary, a: Architecture, ref: str) -> None:
    counted = s.text.elements
    described = arch.text_params(a)
    if abs(counted - described) > PARAM_TOLERANCE * described:
        raise BadFileError(
            f"{printable(ref)}: the tensors hold {counted} language-model parameters but the "
            f"{'config' if s.format == 'safetensors' else 'metadata'} describes {described} "
            f"(more than {PARAM_TOLERANCE:.0%} apart): the files do not match"
        )
    if s.text.bytes <= 0 or s.embedding.bytes > s.text.bytes:
        raise BadFileError(f"{printable(ref)}: the tensors' byte counts do not add up")


def _architecture(s: Summary, table: SpecTable, source: str) -> tuple[Architecture, bool]:
    if s.format == "safetensors":
        return architecture_from_config(s.config, table, source)
    fields = gguf_fields(s.config, s)
    vision = vision_from_mmproj(s.vision_config) if s.vision_config else None
    return build_arch(fields, vision, table, source)


def _params(s: Summary, a: Architecture, source: str) -> ParamCounts:
    """Counted from the tensors; the formulas fill in what the files lack (vision, embedding)."""
    text = s.text.elements
    active = text
    if a.moe is not None and s.routed.elements:
        m = a.moe
        active = (
            text - s.routed.elements + s.routed.elements * m.num_experts_per_tok // (m.num_experts)
        )
    vision = s.vision.elements or arch.vision_params(a.vision)
    return ParamCounts(
        text=text,
        text_active=active,
        embedding=s.embedding.elements or arch.embedding_params(a),
        vision=vision,
        mtp=s.mtp.elements,
        total=text + vision + s.mtp.elements,
        source=source,
    )
