"""Decode and prefill speed.

Decode: generating a token reads the active weights, the sequence's KV cache and its Gated
DeltaNet state, wherever each lives, so the time per token is the sum over devices of bytes read
/ (efficiency x bandwidth), tensor-parallel ranks in parallel, plus a fixed cost per layer and
token (kernel launches, synchronisation, sampling; it dominates small models on fast devices).
With N sequences the weights are read once per step for all of them (MoE: the union of the
experts they route to), KV and state once per sequence, and a step can take no less than its
matmul FLOPs at the prefill rate.

Prefill: compute-bound. FLOPs per prompt token are 2 x the matmul parameters a token passes
through plus the attention term, 4 x heads x head_dim per full-attention layer per earlier
token (QK^T and PV; on average half the prompt), over the device's dense FP16 tensor throughput
(`data/gpus.json`) times an efficiency.

The efficiencies and the fixed cost are not constants of ours: they are fitted to published
measurements (`data/speed_measurements.json`, each with its source) per device kind (discrete
GPU, Apple unified memory, CPU), dense / MoE and runtime; `benchmarks/report/speed.py` prints
their leave-one-out errors.

Over 400 lines because decode, prefill and throughput are fitted together on one set of cited
measurements (leave-one-out in benchmarks/report/speed.py).
"""

from __future__ import annotations

import contextlib
import functools
import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.adapters import LLAMACPP, VLLM, adapter
from qwenfit.datafiles import data_text
from qwenfit.hardware.catalog import catalog_gpus
from qwenfit.hardware.machine import GPU, Machine
from qwenfit.memory.config import configure, plan
from qwenfit.memory.layout import gpu_index_of
from qwenfit.memory.options import Options
from qwenfit.memory.record import Estimate
from qwenfit.memory.runtimes import mtp_speed_factor
from qwenfit.specs import arch
from qwenfit.specs.table import ModelSpec, SpecTable, load_specs
from qwenfit.units import TiB

# RAM reads below this share of the total (the token-embedding row, say) do not need a RAM
# bandwidth to be known.
NEGLIGIBLE = 0.01
# The prompt length llama-bench's pp512, the usual published prefill figure, uses.
PREFILL_REFERENCE_TOKENS = 512

DeviceKind = Literal["gpu", "apple", "cpu"]


class Measurement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    model: str
    quant: str
    device: Literal["gpu", "cpu"]
    gpu: str | None = Field(
        description="Catalog name, for device gpu (or a name the next fields "
        "describe when the GPU is not in the catalog)."
    )
    bandwidth_bytes_per_s: int | None = Field(
        description="Measured bandwidth for device cpu; the vendor's peak for a GPU not in the "
        "catalog."
    )
    context: int
    kv_cache: str
    tokens_per_s: float
    runtime: str
    source: str
    kind: Literal["decode", "prefill"] = "decode"
    prompt_tokens: int | None = Field(None, description="Prefill: the prompt length timed.")
    fp16_tensor_tflops: float | None = Field(
        None, description="For a GPU not in the catalog: its dense FP16 tensor TFLOPS."
    )
    unified_memory: bool | None = Field(
        None, description="For a GPU not in the catalog: Apple-style unified memory."
    )
    device_source: str | None = Field(
        None, description="Where bandwidth / TFLOPS of a GPU not in the catalog come from."
    )
    weights_bytes: int | None = Field(
        None, description="The published file's weights when it is not the stock quant."
    )
    gpus: int = Field(1, ge=1, description="GPUs in tensor parallel (prefill points).")


class Measurements(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    note: str
    measurements: list[Measurement]


def spec_of(est: Estimate, table: SpecTable) -> ModelSpec:
    """The spec `est` was computed for (any checkpoint), or its table row for a record read
    back from JSON."""
    return est.spec or table.get(est.model)


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
    _FITS.clear()
    _CALIBRATION.append(points)
    try:
        yield
    finally:
        _CALIBRATION.pop()
        _FITS.clear()


Key = tuple[DeviceKind, bool]  # (device kind, is_moe)


@dataclass(frozen=True)
class Calibration:
    """What the measurements give: decode efficiency of peak bandwidth per (kind, moe), the
    fixed decode cost per layer and token per kind, prefill efficiency of peak FLOPS per
    (kind, moe), and a speed factor per runtime relative to llama.cpp."""

    decode: dict[Key, float]
    per_layer_s: dict[DeviceKind, float]
    prefill: dict[Key, float]
    runtime: dict[str, float]


_FITS: dict[int, tuple[SpecTable, Calibration]] = {}


def _kind(gpu: GPU | None) -> DeviceKind:
    if gpu is None:
        return "cpu"
    return "apple" if gpu.unified_memory else "gpu"


def _measurement_gpu(m: Measurement) -> GPU | None:
    if m.device == "cpu":
        return None
    assert m.gpu is not None
    if m.bandwidth_bytes_per_s is None:
        return catalog_gpus(m.gpu)[0]
    flops = None if m.fp16_tensor_tflops is None else int(m.fp16_tensor_tflops * 1e12)
    return GPU(
        index=0,
        name=m.gpu,
        vendor="other",
        memory_total_bytes=TiB,
        memory_free_bytes=TiB,
        bandwidth_bytes_per_s=m.bandwidth_bytes_per_s,
        fp16_tensor_flops=flops,
        unified_memory=bool(m.unified_memory),
    )


def _measured_row(table: SpecTable, model: str) -> tuple[SpecTable, ModelSpec]:
    """The table to size a calibration point with, and its row: a measured model that the given
    table lacks (a --specs copy with fewer models) is taken from the shipped table."""
    if not any(x.name == model for x in table.models):
        table = load_specs()
    return table, table.get(model)


def _point_estimate(m: Measurement, table: SpecTable) -> Estimate:
    table, _ = _measured_row(table, m.model)
    gpu = _measurement_gpu(m)
    machine = _CPU if gpu is None else _CPU.model_copy(update={"gpus": [gpu]})
    runtime = LLAMACPP if adapter(m.runtime).gguf else m.runtime
    options = Options(runtime=runtime, quant=m.quant, kv_cache=m.kv_cache, text_only=True)
    cfg = configure(m.model, options, machine, table)
    return plan(cfg, m.context, machine, 0).build(m.context)


def _fit_decode(rows: list[tuple[float, float, int, bool]]) -> tuple[float, float, float]:
    """(a_dense, a_moe, c) minimising the relative error of y = a x + c L over rows
    (x ideal seconds at peak bandwidth, y measured seconds, L layers, moe); efficiency = 1/a.

    Least squares on the relative residuals; c is kept >= 0, and with fewer than three points,
    or a fit that would need c < 0, c = 0 and a is the median ratio."""

    def median_fit(moe: bool | None) -> float:
        sel = [y / x for x, y, _, m in rows if moe is None or m == moe]
        return statistics.median(sel) if sel else math.nan

    has_moe = any(m for *_, m in rows) and not all(m for *_, m in rows)
    if len(rows) >= 3:
        # normal equations for unknowns (a_dense, [a_moe], c) with rows scaled by 1/y
        cols = 3 if has_moe else 2
        ata = [[0.0] * cols for _ in range(cols)]
        atb = [0.0] * cols
        for x, y, n_layer, moe in rows:
            v = [0.0] * cols
            v[1 if (has_moe and moe) else 0] = x / y
            v[-1] = n_layer / y
            for i in range(cols):
                atb[i] += v[i]
                for j in range(cols):
                    ata[i][j] += v[i] * v[j]
        sol = _solve(ata, atb)
        if sol is not None and sol[-1] >= 0 and all(a > 0 for a in sol[:-1]):
            return sol[0], sol[1] if has_moe else sol[0], sol[-1]
    a_all = median_fit(None)
    a_dense = median_fit(False)
    a_moe = median_fit(True)
    return (a_all if math.isnan(a_dense) else a_dense, a_dense if math.isnan(a_moe) else a_moe, 0.0)


def _solve(a: list[list[float]], b: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when singular."""
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[piv][col]) < 1e-300:
            return None
        m[col], m[piv] = m[piv], m[col]
        for r in range(n):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [vr - f * vc for vr, vc in zip(m[r], m[col], strict=True)]
    return [m[i][n] / m[i][i] for i in range(n)]


def _bytes_read(est: Estimate, m: Measurement) -> float:
    """Bytes one decode step reads, the weights scaled to the published file when stated."""
    total = float(sum(read_bytes(est).values()))
    if m.weights_bytes:
        weights = sum(p.read_per_token_bytes for p in est.parts if p.part == "weights")
        total += weights * (m.weights_bytes / est.weights_bytes - 1)
    return total


def calibration(table: SpecTable) -> Calibration:
    """The fit over the measurements in use (cached per spec table)."""
    cached = _FITS.get(id(table))
    if cached is not None and cached[0] is table:
        return cached[1]
    decode_rows: dict[DeviceKind, list[tuple[float, float, int, bool]]] = {}
    prefill: dict[Key, list[float]] = {}
    others: list[tuple[Measurement, float]] = []  # non-llama.cpp decode: (m, ideal seconds)
    prefill_points: list[tuple[Measurement, ModelSpec, DeviceKind, float]] = []
    for m in measurements().measurements:
        gpu = _measurement_gpu(m)
        kind = _kind(gpu)
        _, spec = _measured_row(table, m.model)
        if m.kind == "prefill":
            assert gpu is not None and gpu.fp16_tensor_flops and m.prompt_tokens
            prefill_points.append((m, spec, kind, m.gpus * gpu.fp16_tensor_flops))
            continue
        est = _point_estimate(m, table)
        bandwidth = m.bandwidth_bytes_per_s if gpu is None else gpu.bandwidth_bytes_per_s
        assert bandwidth
        ideal = _bytes_read(est, m) / bandwidth
        if m.runtime == LLAMACPP:
            decode_rows.setdefault(kind, []).append(
                (ideal, 1 / m.tokens_per_s, spec.architecture.num_hidden_layers, spec.is_moe)
            )
        else:
            others.append((m, ideal))
    decode: dict[Key, float] = {}
    per_layer: dict[DeviceKind, float] = {}
    for kind, rows in decode_rows.items():
        a_dense, a_moe, c = _fit_decode(rows)
        decode[(kind, False)], decode[(kind, True)] = 1 / a_dense, 1 / a_moe
        per_layer[kind] = c
    gpu_moe_rows = any(moe for *_, moe in decode_rows.get("gpu", []))
    for kind, rows in decode_rows.items():
        # A kind measured on dense models only: MoE reads scattered expert rows, which the GPU
        # points show costs efficiency; scale its dense figure by the GPUs' MoE/dense ratio.
        if kind != "gpu" and gpu_moe_rows and not any(moe for *_, moe in rows):
            decode[(kind, True)] = decode[(kind, False)] * (
                decode[("gpu", True)] / decode[("gpu", False)]
            )
    if ("gpu", False) in decode:  # Apple without points borrows the discrete GPUs' fit
        for moe in (False, True):
            decode.setdefault(("apple", moe), decode[("gpu", moe)])
        per_layer.setdefault("apple", per_layer["gpu"])
    for m, spec, kind, flops in prefill_points:  # dense: one efficiency for everything
        if not spec.is_moe:
            prefill.setdefault((kind, False), []).append(
                m.tokens_per_s * prefill_flops_per_token(spec, m.prompt_tokens or 0) / flops
            )
    dense_pre = {k: statistics.median(v) for k, v in prefill.items()}
    for m, spec, kind, flops in prefill_points:  # MoE: the matmuls, attention as dense
        if spec.is_moe:
            matmul, attention = prefill_flops(spec, m.prompt_tokens or 0)
            e_attn = dense_pre.get((kind, False), dense_pre.get(("gpu", False)))
            left = 1 / m.tokens_per_s - (attention / (e_attn * flops) if e_attn else 0.0)
            if left > 0:
                prefill.setdefault((kind, True), []).append(matmul / (flops * left))
    pre = {k: statistics.median(v) for k, v in prefill.items()}
    for kind in ("gpu", "apple"):
        if (kind, False) in pre or (kind, True) in pre:
            pre.setdefault((kind, False), pre.get((kind, True), 0.0))
            pre.setdefault((kind, True), pre[(kind, False)])
    if ("gpu", False) in pre:
        pre.setdefault(("apple", False), pre[("gpu", False)])
        pre.setdefault(("apple", True), pre[("gpu", True)])
    partial = Calibration(decode, per_layer, pre, {})
    ratios: dict[str, list[float]] = {}
    for m, ideal in others:
        _, spec = _measured_row(table, m.model)
        kind = _kind(_measurement_gpu(m))
        if (kind, spec.is_moe) not in decode:
            continue
        pred = ideal / decode[(kind, spec.is_moe)] + partial.per_layer_s.get(kind, 0.0) * (
            spec.architecture.num_hidden_layers
        )
        ratios.setdefault(m.runtime, []).append(m.tokens_per_s * pred)
    result = Calibration(
        decode, per_layer, pre, {rt: statistics.median(v) for rt, v in ratios.items()}
    )
    _FITS[id(table)] = (table, result)
    return result


def efficiencies(table: SpecTable) -> dict[Key, float]:
    """{(device kind, is_moe): fitted decode fraction of peak bandwidth}."""
    return calibration(table).decode


_CPU = Machine(
    source="hypothetical",
    ram_total_bytes=TiB,
    ram_available_bytes=TiB,
    ram_usable_bytes=TiB,
)


def prefill_flops(spec: ModelSpec, prompt_tokens: int) -> tuple[float, float]:
    """(matmul, attention) FLOPs per token, on average over a `prompt_tokens` prompt processed
    from scratch.

    matmul: 2 x the weights a token passes through (the routed top-k experts for MoE; neither
    the embedding lookup nor the output layer, which prefill runs for the last token only),
    plus the Gated DeltaNet state update (about 4 x heads x key dim x value dim per layer).
    attention: causal attention over on average half the prompt in every full-attention
    layer, 4 x heads x head_dim per earlier token (QK^T and PV)."""
    a = spec.architecture
    weights = arch.text_active_params(a) - arch.embedding_params(a) - arch.lm_head_params(a)
    heads = max(a.linear_num_key_heads, a.linear_num_value_heads)
    delta = (
        a.n_linear_attention_layers * 4 * heads * (a.linear_key_head_dim * a.linear_value_head_dim)
    )
    attention = (
        a.n_full_attention_layers * 4 * a.num_attention_heads * a.head_dim * prompt_tokens / 2
    )
    return 2 * weights + delta, attention


def prefill_flops_per_token(spec: ModelSpec, prompt_tokens: int) -> float:
    """All FLOPs per prompt token (see `prefill_flops`)."""
    return sum(prefill_flops(spec, prompt_tokens))


def _prefill_seconds_per_token(
    spec: ModelSpec, prompt: int, flops: float, pre: dict[Key, float], kind: DeviceKind
) -> float | None:
    """Matmuls at the (kind, dense/MoE) efficiency, attention at the kind's dense one (the
    flash-attention kernels do not depend on the FFN)."""
    e_ffn = pre.get((kind, spec.is_moe))
    e_attn = pre.get((kind, False), e_ffn)
    if not e_ffn or not e_attn:
        return None
    matmul, attention = prefill_flops(spec, prompt)
    return matmul / (e_ffn * flops) + attention / (e_attn * flops)


@dataclass(frozen=True)
class Speed:
    """Decode and prefill estimates for one configuration (None: a figure that matters is
    unknown)."""

    decode: float | None
    prefill: float | None
    ttft_s: float | None
    ttft_prompt_tokens: int
    aggregate: float | None


def _gpu_of(machine: Machine, est: Estimate, device: int) -> GPU | None:
    """The GPU record a part's device runs on, matched by its index (not its position)."""
    index = gpu_index_of(est, device)
    return next((g for g in machine.gpus if g.index == index), None)


def _decode_seconds(
    est: Estimate, machine: Machine, table: SpecTable, sequences: int
) -> float | None:
    """Seconds for one decode step of `sequences` sequences (memory side)."""
    spec = spec_of(est, table)
    cal = calibration(table)
    moe = spec.is_moe
    a = spec.architecture
    reads: dict[int | None, float] = {}
    for p in est.parts:
        if not p.read_per_token_bytes:
            continue
        n: float
        if p.part in ("kv_cache", "linear_state"):
            n = p.read_per_token_bytes * sequences
        elif p.part == "weights" and p.read_per_token_bytes < p.bytes:
            # MoE: each sequence routes to its own experts; the union of `sequences` draws
            n = p.bytes * (1 - (1 - p.read_per_token_bytes / p.bytes) ** sequences)
        else:
            n = p.read_per_token_bytes
        reads[p.device] = reads.get(p.device, 0.0) + n
    total = sum(reads.values())
    if not total:
        return None
    layers = a.num_hidden_layers
    seconds: dict[int, float] = {}  # per pipeline stage (node), tensor-parallel ranks in parallel
    share: dict[DeviceKind, float] = {}  # each device kind's part of the bytes read
    for device, nbytes in reads.items():
        if device is None:
            continue
        gpu = _gpu_of(machine, est, device)
        if gpu is None or not gpu.bandwidth_bytes_per_s:
            return None
        kind = _kind(gpu)
        share[kind] = share.get(kind, 0.0) + nbytes / total
        stage = device // len(est.layout.devices) if est.layout.tensor_parallel else device
        eff = cal.decode.get((kind, moe))
        if eff is None:
            return None
        seconds[stage] = max(seconds.get(stage, 0.0), nbytes / (eff * gpu.bandwidth_bytes_per_s))
    ram = reads.get(None, 0.0)
    time = sum(seconds.values())
    if ram > NEGLIGIBLE * total:
        if not machine.ram_bandwidth_bytes_per_s or ("cpu", moe) not in cal.decode:
            return None
        time += ram / (cal.decode[("cpu", moe)] * machine.ram_bandwidth_bytes_per_s)
        share["cpu"] = ram / total
    # the fixed cost per layer of each kind, for its share of the work (a split model runs
    # part of every layer, or whole layers, on each)
    fixed = sum(cal.per_layer_s.get(k, 0.0) * f for k, f in share.items())
    return time + fixed * layers if time else None


def _runtime_factor(est: Estimate, table: SpecTable) -> float:
    """The runtime's measured factor, times MTP drafting's published gain when it is on
    (memory.runtimes.mtp_speed_factor)."""
    mtp = mtp_speed_factor(est.runtime, spec_of(est, table).is_moe) if est.mtp else 1.0
    return calibration(table).runtime.get(est.runtime, 1.0) * mtp


def estimate_speed(est: Estimate, machine: Machine, table: SpecTable) -> float | None:
    """Estimated single-sequence decode tokens/s, or None when a bandwidth that matters is
    unknown (RAM bandwidth is not probed)."""
    t = _decode_seconds(est, machine, table, 1)
    return round(_runtime_factor(est, table) / t, 1) if t else None


def prefill_rate(est: Estimate, machine: Machine, table: SpecTable, prompt: int) -> float | None:
    """Prompt tokens/s when the weights sit on GPUs whose FP16 throughput is known."""
    spec = spec_of(est, table)
    weights = [p for p in est.parts if p.part == "weights"]
    on_gpu = sum(p.bytes for p in weights if p.device is not None)
    # all weights but the token embeddings (which llama.cpp keeps on the host) on GPUs
    in_ram = sum(
        p.bytes for p in weights if p.device is None and not p.detail.startswith("token embeddings")
    )
    if not on_gpu or in_ram > NEGLIGIBLE * (on_gpu + in_ram):
        return None
    devices = {p.device for p in est.parts if p.device is not None}
    gpus = [_gpu_of(machine, est, d) for d in devices]
    if not gpus or any(g is None or not g.fp16_tensor_flops for g in gpus):
        return None
    # tensor parallel shares the work across the ranks of a stage; a layer split runs the
    # stages one after another, so the rate is that of one GPU
    tp = est.layout.tensor_parallel or 1
    flops = min(g.fp16_tensor_flops or 0 for g in gpus if g is not None) * tp
    seconds = _prefill_seconds_per_token(
        spec, prompt, flops, calibration(table).prefill, _kind(gpus[0])
    )
    return None if seconds is None else 1 / seconds


def estimate_all(est: Estimate, machine: Machine, table: SpecTable) -> Speed:
    """Decode (one sequence), prefill at pp512, TTFT for a prompt filling the context, and the
    aggregate decode rate of `est.parallel` sequences."""
    factor = _runtime_factor(est, table)
    one = _decode_seconds(est, machine, table, 1)
    decode = round(factor / one, 1) if one else None
    prompt = est.context
    pp = prefill_rate(est, machine, table, PREFILL_REFERENCE_TOKENS)
    pp_full = prefill_rate(est, machine, table, prompt)
    aggregate = None
    n = est.parallel
    if n > 1:
        step = _decode_seconds(est, machine, table, n)
        if step:
            if pp is not None:  # a batched step is at least its FLOPs at the prefill rate
                step = max(step, n / pp)
            aggregate = round(factor * n / step, 1)
    return Speed(
        decode=decode,
        prefill=None if pp is None else round(pp, 1),
        ttft_s=None if pp_full is None else round(prompt / pp_full, 3),
        ttft_prompt_tokens=prompt,
        aggregate=aggregate,
    )


# vLLM docs, features/quantization/fp8 (https://docs.vllm.ai/en/latest/features/quantization/
# fp8.html): "FP8 computation is supported on NVIDIA GPUs with compute capability >= 8.9 (Ada
# Lovelace, Hopper, Blackwell). FP8 models will run on compute capability >= 7.5 (Turing) as
# weight-only W8A16, utilizing FP8 Marlin." (vLLM PR #5975.)
FP8_COMPUTE_CAPABILITY = (8, 9)


def fp8_weight_only(est: Estimate, machine: Machine) -> bool:
    """True when vLLM would run these FP8 weights as weight-only W8A16 (FP8 Marlin) because a GPU
    in use has no FP8 units: slower than the W8A8 path the speed model's FP8 figures assume,
    above all in prefill. Unknown compute capabilities count as capable."""
    if est.runtime != VLLM or est.quant != "fp8":
        return False
    for g in machine.gpus:
        if g.vendor != "nvidia" or not g.compute_capability:
            continue
        major, _, minor = g.compute_capability.partition(".")
        if (int(major), int(minor or 0)) < FP8_COMPUTE_CAPABILITY:
            return True
    return False
