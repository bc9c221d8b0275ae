"""Decode speed from memory bandwidth: generating a token reads the active weights, the sequence's
KV cache and its Gated DeltaNet state, wherever each lives, so the time per token is the sum over
devices of bytes read / (efficiency x bandwidth); tensor-parallel ranks read in parallel.

The efficiency factors are not constants of ours: they are the median ratio of published
measurements (`data/speed_measurements.json`, each with its source) to this same model.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.datafiles import data_text
from qwenfit.hardware.catalog import catalog_gpus
from qwenfit.hardware.machine import Machine
from qwenfit.memory.config import configure, plan
from qwenfit.memory.layout import gpu_index_of
from qwenfit.memory.options import Options
from qwenfit.memory.record import Estimate
from qwenfit.specs.table import SpecTable, load_specs
from qwenfit.units import TiB

# RAM reads below this share of the total (the token-embedding row, say) do not need a RAM
# bandwidth to be known.
NEGLIGIBLE = 0.01


class Measurement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    quant: str
    device: Literal["gpu", "cpu"]
    gpu: str | None = Field(description="Catalog name, for device gpu.")
    bandwidth_bytes_per_s: int | None = Field(description="Measured bandwidth, for device cpu.")
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
def _shipped() -> Measurements:
    return Measurements.model_validate_json(data_text("speed_measurements.json"))


_CALIBRATION: list[Measurements] = []  # a stack of sets replacing the shipped one


def measurements() -> Measurements:
    """The calibration points in use: the shipped ones unless `calibrated_on` swapped them."""
    return _CALIBRATION[-1] if _CALIBRATION else _shipped()


@contextlib.contextmanager
def calibrated_on(points: Measurements) -> Iterator[None]:
    """Calibrate on `points` instead of the shipped set while the block runs (leave-one-out
    validation in `benchmarks/report/speed.py`)."""
    _EFFICIENCIES.clear()
    _CALIBRATION.append(points)
    try:
        yield
    finally:
        _CALIBRATION.pop()
        _EFFICIENCIES.clear()


Key = tuple[Literal["gpu", "cpu"], bool]  # (device, is_moe)
_EFFICIENCIES: dict[int, tuple[SpecTable, dict[Key, float]]] = {}


def efficiencies(table: SpecTable) -> dict[Key, float]:
    """{(device, is_moe): median achieved fraction of peak bandwidth} over the measurements.

    A combination without measurements borrows the dense figure of the same device.
    """
    cached = _EFFICIENCIES.get(id(table))
    if cached is not None and cached[0] is table:
        return cached[1]
    ratios: dict[Key, list[float]] = {}
    for m in measurements().measurements:
        if m.device == "gpu":
            assert m.gpu is not None
            bandwidth = catalog_gpus(m.gpu)[0].bandwidth_bytes_per_s
        else:
            bandwidth = m.bandwidth_bytes_per_s
        assert bandwidth
        machine = None if m.device == "gpu" else _CPU
        options = Options(runtime=m.runtime, quant=m.quant, kv_cache=m.kv_cache, text_only=True)
        # A measured model the given table lacks (a --specs copy): the shipped table's row.
        source = table if any(x.name == m.model for x in table.models) else load_specs()
        cfg = configure(m.model, options, machine, source)
        est = plan(cfg, m.context, machine, 0).build(m.context)
        ideal = bandwidth / sum(read_bytes(est).values())
        key = (m.device, source.get(m.model).is_moe)
        ratios.setdefault(key, []).append(m.tokens_per_s / ideal)
    result = {k: statistics.median(v) for k, v in ratios.items()}
    for device in ("gpu", "cpu"):
        if (device, False) in result:
            result.setdefault((device, True), result[(device, False)])
    _EFFICIENCIES[id(table)] = (table, result)
    return result


_CPU = Machine(
    source="hypothetical",
    ram_total_bytes=TiB,
    ram_available_bytes=TiB,
    ram_usable_bytes=TiB,
)


def estimate_speed(est: Estimate, machine: Machine, table: SpecTable) -> float | None:
    """Estimated single-sequence decode tokens/s, or None when a bandwidth that matters is
    unknown (RAM bandwidth is not probed)."""
    reads = read_bytes(est)
    total = sum(reads.values())
    if not total:
        return None
    moe = table.get(est.model).is_moe
    eff = efficiencies(table)
    by_index = {g.index: g for g in machine.gpus}
    seconds: dict[int, float] = {}  # per pipeline stage (node), tensor-parallel ranks in parallel
    for device, n in reads.items():
        if device is None:
            continue
        gpu = by_index.get(gpu_index_of(est, device))
        if gpu is None or not gpu.bandwidth_bytes_per_s:
            return None
        stage = device // len(est.layout.devices) if est.layout.tensor_parallel else device
        rate = eff[("gpu", moe)] * gpu.bandwidth_bytes_per_s
        seconds[stage] = max(seconds.get(stage, 0.0), n / rate)
    ram = reads.get(None, 0)
    time = sum(seconds.values())
    if ram > NEGLIGIBLE * total:
        if not machine.ram_bandwidth_bytes_per_s or ("cpu", moe) not in eff:
            return None
        time += ram / (eff[("cpu", moe)] * machine.ram_bandwidth_bytes_per_s)
    return round(1 / time, 1) if time else None
