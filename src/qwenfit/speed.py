"""Decode speed from memory bandwidth: every generated token reads the active weights, the KV
cache written so far and the Gated DeltaNet state, so tokens/s ~ efficiency x bandwidth / bytes.

The efficiency factors are not constants of ours: they are the median ratio of published
measurements (`data/speed_measurements.json`, each with its source) to this same formula.
"""

from __future__ import annotations

import functools
import statistics

from pydantic import BaseModel, ConfigDict

from qwenfit.estimate_model import Estimate
from qwenfit.machines import _data_text, catalog_gpus
from qwenfit.specs import ModelSpec, SpecTable


class Measurement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    quant: str
    gpu: str
    context: int
    kv_cache: str
    tokens_per_s: float
    runtime: str
    source: str


class Measurements(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    note: str
    measurements: list[Measurement]


def bytes_per_token(
    spec: ModelSpec,
    weights_bytes: int,
    kv_cache_bytes: int,
    linear_state_bytes: int,
    parallel: int = 1,
) -> int:
    """Bytes read to generate one token of one sequence.

    Weights: the active share (MoE: top-k experts) of the stored bytes, less the embedding table
    when it is untied (a lookup reads one row); KV: the whole cache of the sequence; state: read
    and written once per token.
    """
    p = spec.params
    read = p.text_active - (0 if spec.architecture.tie_word_embeddings else p.embedding)
    weights = weights_bytes * read // p.text
    per_seq = (kv_cache_bytes + 2 * linear_state_bytes) // max(1, parallel)
    return weights + per_seq


def _estimate_bytes(table: SpecTable, m: Measurement) -> int:
    from qwenfit.estimator import estimate

    est = estimate(
        m.model,
        runtime=m.runtime,
        quant=m.quant,
        context=m.context,
        kv_cache=m.kv_cache,
        text_only=True,
        table=table,
    )
    return bytes_per_token(
        table.get(m.model), est.weights_bytes, est.kv_cache_bytes, est.linear_state_bytes
    )


@functools.cache
def _measurements() -> Measurements:
    return Measurements.model_validate_json(_data_text("speed_measurements.json"))


_EFFICIENCIES: dict[int, tuple[SpecTable, dict[bool, float]]] = {}


def efficiencies(table: SpecTable) -> dict[bool, float]:
    """{is_moe: median achieved fraction of peak bandwidth} over the published measurements."""
    cached = _EFFICIENCIES.get(id(table))
    if cached is not None and cached[0] is table:
        return cached[1]
    ratios: dict[bool, list[float]] = {False: [], True: []}
    for m in _measurements().measurements:
        bandwidth = catalog_gpus(m.gpu)[0].bandwidth_bytes_per_s
        assert bandwidth
        ideal = bandwidth / _estimate_bytes(table, m)
        ratios[table.get(m.model).is_moe].append(m.tokens_per_s / ideal)
    dense = statistics.median(ratios[False])
    result = {False: dense, True: statistics.median(ratios[True]) if ratios[True] else dense}
    _EFFICIENCIES[id(table)] = (table, result)
    return result


def decode_tokens_per_s(
    est: Estimate, spec: ModelSpec, bandwidth: int | None, table: SpecTable
) -> float | None:
    """Estimated single-sequence decode speed, or None when the bandwidth is unknown."""
    if not bandwidth:
        return None
    need = bytes_per_token(
        spec, est.weights_bytes, est.kv_cache_bytes, est.linear_state_bytes, est.parallel
    )
    return round(efficiencies(table)[spec.is_moe] * bandwidth / need, 1)
