"""What a weight precision and a KV cache type cost in quality, from measurements.

`data/quant_loss.json` holds, per precision, the measurements found (on this family per size
where published, else llama.cpp's scoreboard on another model); `data/kv_quality.json` the KV
cache types. Both are validated on load: a precision or KV type the tables do not know is an
error, never a free pass. Where a precision has no measurement the cost is that of the nearest
measured precision of the same nominal bits, capped by the cheapest measured coarser one (a
proxy never costs more than a coarser type that was measured), and the answer says so.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qwenfit.datafiles import data_text
from qwenfit.errors import SpecError
from qwenfit.specs.table import ModelSpec

Basis = Literal["reference", "this family", "other model"]


class _Measurement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    loss: float = Field(ge=0, lt=1)
    basis: Basis
    models: list[str] | None = None
    source: str
    derivation: str


class _Precision(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bits: int = Field(ge=1, le=32)
    measurements: list[_Measurement]


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str
    url: str
    also: list[str] = []
    note: str | None = None


class _QuantLossFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    note: str
    precisions: dict[str, _Precision]
    sources: dict[str, _Source]


@dataclass(frozen=True)
class Loss:
    """The cost charged for one (model, precision), and where it comes from."""

    value: float
    measured: bool  # a measurement of this precision (any model), not a proxy
    note: str  # "" when measured on this family at this size


@functools.cache
def _quant_file() -> _QuantLossFile:
    try:
        doc = _QuantLossFile.model_validate_json(data_text("quant_loss.json"))
    except ValidationError as e:
        raise SpecError(f"quant_loss.json: {e.errors()[0]['msg']}") from None
    for name, p in doc.precisions.items():
        for m in p.measurements:
            if m.source not in doc.sources:
                raise SpecError(f"quant_loss.json: {name}: unknown source {m.source!r}")
    return doc


def precision_bits(quant: str) -> int:
    """Nominal bits of the bulk of the weights (16 for BF16, 4 for Q4_K_M)."""
    return _precision(quant).bits


def _precision(quant: str) -> _Precision:
    p = _quant_file().precisions.get(quant)
    if p is None:
        raise SpecError(f"quant_loss.json has no row for precision {quant!r}")
    return p


def _size_distance(spec: ModelSpec, models: list[str] | None, by_name: dict[str, int]) -> float:
    """How far the measured models are from `spec` (0: this model; by total parameters)."""
    if not models:
        return float("inf")
    if spec.name in models:
        return 0.0
    known = [by_name[m] for m in models if m in by_name]
    if not known:
        return float("inf")
    return min(abs(k / spec.params.total - 1) for k in known) + 1


def _best_measurement(spec: ModelSpec, quant: str, sizes: dict[str, int]) -> _Measurement | None:
    """Family at this size, family at the nearest size, then another model."""
    ms = _precision(quant).measurements
    if not ms:
        return None
    order = {"reference": 0, "this family": 1, "other model": 2}
    return min(ms, key=lambda m: (order[m.basis], _size_distance(spec, m.models, sizes)))


def _where(m: _Measurement, spec: ModelSpec, quant: str) -> str:
    if m.basis == "reference" or (m.models and spec.name in m.models):
        return ""
    if m.basis == "this family":
        return f"{quant} measured on {', '.join(m.models or [])}, not on {spec.name}"
    return f"{quant} measured on another model (llama.cpp scoreboard), not on this family"


def weight_loss(spec: ModelSpec, quant: str, sizes: dict[str, int] | None = None) -> Loss:
    """Quality cost of running `spec` at precision `quant` (fraction of the task score).

    `sizes` maps model names to total parameters, to find the nearest measured size. Never
    more than a coarser precision measured on this family costs."""
    sizes = sizes or {}
    got = _uncapped(spec, quant, sizes)
    if got.note == "":
        return got
    bits = precision_bits(quant)
    family = [
        (m.loss, name)
        for name, p in _quant_file().precisions.items()
        if p.bits < bits
        and (m := _best_measurement(spec, name, sizes)) is not None
        and m.basis == "this family"
    ]
    cap = min(family, default=None)
    if cap is not None and got.value > cap[0]:
        return Loss(
            cap[0],
            False,
            f"{quant} charged as {cap[1]} ({cap[0]:.2%}), a coarser type measured on this family",
        )
    return got


def _uncapped(spec: ModelSpec, quant: str, sizes: dict[str, int]) -> Loss:
    own = _best_measurement(spec, quant, sizes)
    if own is not None:
        return Loss(own.loss, True, _where(own, spec, quant))
    bits = precision_bits(quant)
    same: list[tuple[int, float, str, _Measurement]] = []
    coarser: list[tuple[float, str]] = []
    order = {"reference": 0, "this family": 1, "other model": 2}
    for name, p in _quant_file().precisions.items():
        m = _best_measurement(spec, name, sizes)
        if m is None:
            continue
        if p.bits == bits:
            same.append((order[m.basis], _size_distance(spec, m.models, sizes), name, m))
        elif p.bits < bits:
            coarser.append((m.loss, name))
    cap = min(coarser, default=None)
    if same:
        _, _, near, m = min(same, key=lambda t: (t[0], t[1], t[2]))
        if cap is None or m.loss <= cap[0]:
            return Loss(m.loss, False, f"{quant} not measured: charged as {near} ({m.loss:.2%})")
    if cap is None:
        raise SpecError(f"quant_loss.json: no measurement near precision {quant!r}")
    return Loss(
        cap[0], False, f"{quant} not measured: charged as {cap[1]} ({cap[0]:.2%}), a coarser type"
    )


# -- KV cache --------------------------------------------------------------------------------


class _KVType(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    quality_loss: float = Field(ge=0, lt=1)
    source: str
    derivation: str | None = None


class _KVFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    note: str
    kv_cache: dict[str, _KVType]
    sources: dict[str, dict[str, object]]


@functools.cache
def kv_table() -> dict[str, float]:
    try:
        doc = _KVFile.model_validate(json.loads(data_text("kv_quality.json")))
    except (ValidationError, ValueError) as e:
        raise SpecError(f"kv_quality.json: {e}".splitlines()[0]) from None
    for name, kv in doc.kv_cache.items():
        if kv.source not in doc.sources and kv.source != "reference":
            raise SpecError(f"kv_quality.json: {name}: unknown source {kv.source!r}")
    return {k: v.quality_loss for k, v in doc.kv_cache.items()}


def kv_loss(kv_cache: str) -> float:
    """Quality cost of a KV cache type; a type the table lacks is an error, not zero."""
    table = kv_table()
    if kv_cache not in table:
        raise SpecError(f"kv_quality.json has no row for KV cache type {kv_cache!r}")
    return table[kv_cache]
