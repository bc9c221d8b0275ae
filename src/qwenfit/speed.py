"""Decode speed from memory bandwidth: generating a token reads the active weights, the sequence's
KV cache and its Gated DeltaNet state, wherever each lives, so the time per token is the sum over
devices of bytes read / (efficiency x bandwidth); tensor-parallel ranks read in parallel.

The efficiency factors are not constants of ours: they are the median ratio of published
measurements (`data/speed_measurements.json`, each with its source) to this same model.
"""

from __future__ import annotations

import functools
import statistics

from pydantic import BaseModel, ConfigDict

from qwenfit.estimate_model import Estimate
from qwenfit.hardware import Machine
from qwenfit.machines import _data_text, catalog_gpus
from qwenfit.specs import SpecTable

# RAM reads below this share of the total (the token-embedding row, say) do not need a RAM
# bandwidth to be known.
NEGLIGIBLE = 0.01


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


def read_bytes(est: Estimate) -> dict[int | None, int]:
    """Bytes read per generated token, by GPU index (None: host RAM)."""
    out: dict[int | None, int] = {}
    for p in est.parts:
        out[p.device] = out.get(p.device, 0) + p.read_per_token_bytes
    return out


@functools.cache
def _measurements() -> Measurements:
    return Measurements.model_validate_json(_data_text("speed_measurements.json"))


_EFFICIENCIES: dict[int, tuple[SpecTable, dict[bool, float]]] = {}


def efficiencies(table: SpecTable) -> dict[bool, float]:
    """{is_moe: median achieved fraction of peak bandwidth} over the published measurements."""
    from qwenfit.estimator import estimate

    cached = _EFFICIENCIES.get(id(table))
    if cached is not None and cached[0] is table:
        return cached[1]
    ratios: dict[bool, list[float]] = {False: [], True: []}
    for m in _measurements().measurements:
        bandwidth = catalog_gpus(m.gpu)[0].bandwidth_bytes_per_s
        assert bandwidth
        est = estimate(
            m.model,
            runtime=m.runtime,
            quant=m.quant,
            context=m.context,
            kv_cache=m.kv_cache,
            text_only=True,
            table=table,
        )
        ideal = bandwidth / sum(read_bytes(est).values())
        ratios[table.get(m.model).is_moe].append(m.tokens_per_s / ideal)
    dense = statistics.median(ratios[False])
    result = {False: dense, True: statistics.median(ratios[True]) if ratios[True] else dense}
    _EFFICIENCIES[id(table)] = (table, result)
    return result


def estimate_speed(est: Estimate, machine: Machine, table: SpecTable) -> float | None:
    """Estimated single-sequence decode tokens/s, or None when a bandwidth that matters is
    unknown (RAM bandwidth is not probed)."""
    reads = read_bytes(est)
    total = sum(reads.values())
    if not total:
        return None
    gpus = machine.gpus
    seconds: dict[int, float] = {}  # per pipeline stage (node), tensor-parallel ranks in parallel
    for device, n in reads.items():
        if device is None:
            continue
        gpu = gpus[device % len(gpus)] if gpus else None
        if gpu is None or not gpu.bandwidth_bytes_per_s:
            return None
        stage = device // len(est.layout.devices) if est.layout.tensor_parallel else device
        seconds[stage] = max(seconds.get(stage, 0.0), n / gpu.bandwidth_bytes_per_s)
    ram = reads.get(None, 0)
    time = sum(seconds.values())
    if ram > NEGLIGIBLE * total:
        if not machine.ram_bandwidth_bytes_per_s:
            return None
        time += ram / machine.ram_bandwidth_bytes_per_s
    efficiency = efficiencies(table)[table.get(est.model).is_moe]
    return round(efficiency / time, 1) if time else None
