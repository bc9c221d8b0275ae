"""Fitting the speed model's constants to the measurements (build time and validation only).

Decode: least squares on the relative error of
    1 / tokens_per_s = sum over kinds of bytes / (efficiency x bandwidth) + layers x cost
over the llama.cpp points, efficiencies per kind of bytes (dense weights and state, routed
experts, KV cache) and device kind (discrete GPU, Apple, CPU), the cost per backend. Every
unknown is bounded (an efficiency at most 1.1 of the vendor's peak, a cost >= 0): a bounded
least-squares solve by active sets. A device kind without routed-expert points borrows the
lowest measured ratio of expert to weights efficiency; a backend without points the median of
the GPU backends. MoE models add a fixed cost per layer (routing, the per-expert kernels); KV
reads get an efficiency per backend where deep decode points time it. Ollama and vLLM get
the median ratio of their points to the llama.cpp fit; MLX its own weights efficiency and
per-layer cost. Prefill: the same solve over prompt-processing points, per device kind.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterator, Sequence

from qwenfit.adapters import LLAMACPP, MLX, adapter
from qwenfit.hardware.catalog import catalog_gpus
from qwenfit.hardware.machine import GPU, Machine, Vendor
from qwenfit.memory import calibration as cal_mod
from qwenfit.memory.calibration import (
    BACKENDS,
    KINDS,
    Backend,
    Calibration,
    DeviceKind,
    Measurement,
    Measurements,
    PrefillFit,
)
from qwenfit.memory.config import configure, plan
from qwenfit.memory.options import Options
from qwenfit.memory.record import Estimate
from qwenfit.memory.speed import (
    backend_of,
    byte_seconds,
    device_kind,
    prefill_flops,
    reads_by_kind,
)
from qwenfit.specs.table import load_specs
from qwenfit.units import TiB

MAX_EFFICIENCY = 1.1  # of the vendor's peak (boost clocks, rounding of published figures)
GPU_BACKENDS: tuple[Backend, ...] = ("cuda", "rocm", "vulkan", "sycl")
DEEP_KV_TOKENS = 16384  # a decode point this deep in the cache tells the KV efficiency apart
MIN_DEEP_POINTS = 4  # a backend with fewer deep points takes the pooled KV efficiency
MIN_PREFILL_POINTS = 5  # a device kind with fewer prefill points borrows the discrete GPUs' fit


def point_gpu(m: Measurement) -> GPU | None:
    if m.device == "cpu":
        return None
    name = m.gpu or ""
    if m.bandwidth_bytes_per_s is None:  # a unified-memory chip's GPU gets its share of RAM
        return catalog_gpus(name, TiB)[0]
    flops = None if m.fp16_tensor_tflops is None else int(m.fp16_tensor_tflops * 1e12)
    return GPU(
        index=0,
        name=name,
        vendor=vendor_of(name),
        memory_total_bytes=TiB,
        memory_free_bytes=TiB,
        bandwidth_bytes_per_s=m.bandwidth_bytes_per_s,
        fp16_tensor_flops=flops,
        unified_memory=bool(m.unified_memory),
    )


def vendor_of(name: str) -> Vendor:
    """The vendor a GPU outside the catalog is named for (its default backend follows)."""
    low = name.lower()
    if any(w in low for w in ("tesla", "rtx", "geforce", "nvidia", "quadro")):
        return "nvidia"
    if any(w in low for w in ("radeon", "instinct")):
        return "amd"
    return "apple" if "apple" in low else "other"


def point_estimate(m: Measurement) -> Estimate:
    """The configuration the point timed, sized with the shipped table, all on one device."""
    gpu = point_gpu(m)
    machine = Machine(
        source="hypothetical",
        ram_total_bytes=TiB,
        ram_available_bytes=TiB,
        ram_usable_bytes=TiB,
        gpus=[] if gpu is None else [gpu],
    )
    runtime = LLAMACPP if adapter(m.runtime).gguf else m.runtime
    options = Options(runtime=runtime, quant=m.quant, kv_cache=m.kv_cache, text_only=True)
    cfg = configure(m.model, options, machine, load_specs())
    return plan(cfg, m.context, machine, 0).build(m.context)


def _decode_row(m: Measurement) -> tuple[dict[str, float], DeviceKind, Backend, int, int]:
    """Seconds-at-full-bandwidth per kind of bytes, device kind, backend, layers, MoE layers."""
    est = point_estimate(m)
    gpu = point_gpu(m)
    reads = reads_by_kind(est, m.context if m.depth is None else m.depth)
    row = {k: 0.0 for k in ("weights", "experts", "kv", "state")}
    for r in reads.values():
        for k, v in r.items():
            row[k] += v
    if m.weights_bytes:  # the published file's weights, not the stock quant's
        scale = m.weights_bytes / est.weights_bytes
        row["weights"] *= scale
        row["experts"] *= scale
    bw = float(m.bandwidth_bytes_per_s or (gpu.bandwidth_bytes_per_s if gpu else 0) or 0)
    spec = load_specs().get(m.model)
    layers = spec.architecture.num_hidden_layers
    return (
        {k: v / bw for k, v in row.items()},
        device_kind(gpu),
        m.backend or backend_of(gpu),
        layers,
        layers if spec.is_moe else 0,
    )


def bounded_lsq(rows: Sequence[dict[str, float]], lower: dict[str, float]) -> dict[str, float]:
    """x >= lower minimising sum over rows of (row . x - 1)^2 (rows already divided by the
    measured value, so residuals are relative). Active set: solve, pin the most-violating
    unknown to its bound, repeat."""
    cols = sorted({c for r in rows for c, v in r.items() if v})
    pinned: dict[str, float] = {}
    while True:
        free = [c for c in cols if c not in pinned]
        ata = [[0.0] * len(free) for _ in free]
        atb = [0.0] * len(free)
        for r in rows:
            target = 1.0 - sum(r.get(c, 0.0) * v for c, v in pinned.items())
            v = [r.get(c, 0.0) for c in free]
            for i in range(len(free)):
                atb[i] += v[i] * target
                for j in range(len(free)):
                    ata[i][j] += v[i] * v[j]
        sol = _solve(ata, atb) if free else []
        x = dict(zip(free, sol or [lower.get(c, 0.0) for c in free], strict=True))
        worst = min(free, key=lambda c: x[c] - lower.get(c, 0.0), default=None)
        if sol is not None and (worst is None or x[worst] >= lower.get(worst, 0.0)):
            return x | pinned
        assert worst is not None
        pinned[worst] = lower.get(worst, 0.0)


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


def _decode_solve(
    points: list[Measurement], own_kv: set[Backend], pooled_kv: float | None
) -> dict[str, float]:
    """The bounded solve over the decode points. KV reads of a backend in `own_kv` get that
    backend's efficiency; the others one pooled efficiency, or `pooled_kv` when given (its
    time moved to the target side, as a known part)."""
    rows: list[dict[str, float]] = []
    for m in points:
        s, kind, backend, layers, moe_layers = _decode_row(m)
        y = 1 / m.tokens_per_s
        row = {
            f"w_{kind}": (s["weights"] + s["state"]) / y,
            f"x_{kind}": s["experts"] / y,
            f"c_{backend}": layers / y,
            "c_moe": moe_layers / y,
        }
        if backend in own_kv:
            row[f"kv_{backend}"] = s["kv"] / y
        elif pooled_kv is None:
            row["kv"] = s["kv"] / y
        else:
            left = 1 - s["kv"] / y / pooled_kv
            if left <= 0:
                continue
            row = {c: v / left for c, v in row.items()}
        rows.append(row)
    lower = {c: 1 / MAX_EFFICIENCY for c in {c for r in rows for c in r} if not c.startswith("c_")}
    return bounded_lsq(rows, lower)


def _fit_decode(
    points: list[Measurement],
) -> tuple[
    dict[DeviceKind, float],
    dict[DeviceKind, float],
    dict[Backend, float],
    float,
    dict[Backend, float],
    float,
]:
    """Efficiencies by device kind, KV efficiency by backend and pooled, fixed costs by backend
    and per MoE layer. A backend timed deep in the cache often enough (llama-bench `tg @ d`
    sweeps) gets its own KV efficiency; the others keep the one pooled over every point."""
    deep: dict[Backend, int] = {}
    for m in points:
        if (m.context if m.depth is None else m.depth) >= DEEP_KV_TOKENS:
            b = m.backend or backend_of(point_gpu(m))
            deep[b] = deep.get(b, 0) + 1
    pooled = 1 / _decode_solve(points, set(), None)["kv"]
    own = {b for b, n in deep.items() if n >= MIN_DEEP_POINTS}
    x = _decode_solve(points, own, pooled)
    weights = {k: 1 / x[f"w_{k}"] for k in KINDS if f"w_{k}" in x}
    for k in KINDS:
        weights.setdefault(k, weights["gpu"])
    experts = {k: 1 / x[f"x_{k}"] for k in KINDS if f"x_{k}" in x}
    # a kind without routed-expert points (the CPU: no published run times experts in RAM
    # alone) takes the lowest measured ratio of expert to weights efficiency
    ratio = min(experts[k] / weights[k] for k in experts)
    for k in KINDS:
        experts.setdefault(k, min(MAX_EFFICIENCY, weights[k] * ratio))
    costs = {b: x[f"c_{b}"] for b in BACKENDS if f"c_{b}" in x}
    gpu_costs = [costs[b] for b in GPU_BACKENDS if b in costs]
    for b in BACKENDS:
        costs.setdefault(b, statistics.median(gpu_costs))
    kv = {b: 1 / x[f"kv_{b}"] for b in BACKENDS if f"kv_{b}" in x}
    return weights, experts, kv, pooled, costs, x.get("c_moe", 0.0)


def _fit_prefill(points: list[Measurement]) -> tuple[dict[DeviceKind, PrefillFit], float]:
    by_kind: dict[DeviceKind, list[dict[str, float]]] = {}
    for m in points:
        gpu = point_gpu(m)
        if gpu is None or not gpu.fp16_tensor_flops:
            continue
        spec = load_specs().get(m.model)
        f = m.gpus * gpu.fp16_tensor_flops
        dense, experts, attention = prefill_flops(spec, m.prompt_tokens or 0, m.depth or 0)
        y = 1 / m.tokens_per_s
        by_kind.setdefault(device_kind(gpu), []).append(
            {
                "dense": dense / f / y,
                "moe": experts / f / y,
                "attention": attention / f / y,
                "layer": spec.architecture.num_hidden_layers / y,
                "request": (1 / (m.prompt_tokens or 1)) / y if m.server else 0.0,
            }
        )
    out: dict[DeviceKind, PrefillFit] = {}
    request = 0.0
    for kind, rows in by_kind.items():
        if kind != "gpu" and len(rows) < MIN_PREFILL_POINTS:
            continue  # too few to fit four constants: the discrete GPUs' fit
        x = bounded_lsq(rows, {"dense": 1.0, "moe": 1.0, "attention": 1.0})
        dense = 1 / x["dense"]
        out[kind] = PrefillFit(
            dense=dense,
            moe=1 / x["moe"] if "moe" in x else dense,
            attention=1 / x.get("attention", x["dense"]),
            per_layer_token_s=x.get("layer", 0.0),
        )
        if kind == "gpu":
            request = x.get("request", 0.0)
    out.setdefault("apple", out["gpu"])
    return out, request


def fit(points: Measurements) -> Calibration:
    ms = points.measurements
    llama = [m for m in ms if m.kind == "decode" and m.runtime == LLAMACPP]
    weights, experts, kv_by, kv, costs, moe = _fit_decode(llama)
    partial = Calibration(
        points=len(ms),
        weights=weights,
        experts=experts,
        kv=kv,
        kv_by_backend=kv_by,
        per_layer_s=costs,
        moe_per_layer_s=moe,
        prefill={},
        server_request_s=0.0,
        runtime={},
    )
    prefill, request = _fit_prefill(
        [m for m in ms if m.kind == "prefill" and m.runtime == LLAMACPP]
    )
    ratios: dict[str, list[float]] = {}
    mlx_rows: list[dict[str, float]] = []
    for m in ms:
        if m.kind != "decode" or m.runtime == LLAMACPP:
            continue
        s, kind, backend, layers, moe_layers = _decode_row(m)
        y = 1 / m.tokens_per_s
        if m.runtime == MLX:
            mlx_rows.append(
                {
                    "w": (s["weights"] + s["experts"] + s["state"]) / y,
                    "kv": s["kv"] / y,
                    "c": layers / y,
                }
            )
            continue
        # the fit's llama.cpp time, as speed.decode_seconds takes it (rows are already seconds
        # at full bandwidth)
        pred = (
            byte_seconds(s, 1.0, kind, partial, False, backend)
            + costs[backend] * layers
            + moe * moe_layers
        )
        ratios.setdefault(m.runtime, []).append(pred / y)
    runtime = {rt: statistics.median(v) for rt, v in sorted(ratios.items())}
    mlx_w = mlx_c = None
    if len(mlx_rows) >= 3:  # KV at the llama.cpp Metal fit's efficiency, moved to the target side
        mlx_kv = kv_by.get("metal", kv)
        rows = [
            {"w": r["w"] / left, "c": r["c"] / left}
            for r in mlx_rows
            if (left := 1 - r["kv"] / mlx_kv) > 0
        ]
        x = bounded_lsq(rows, {"w": 1 / MAX_EFFICIENCY})
        mlx_w, mlx_c = 1 / x["w"], x.get("c", 0.0)
    return partial.model_copy(
        update={
            "prefill": prefill,
            "server_request_s": request,
            "runtime": runtime,
            "mlx_weights": mlx_w,
            "mlx_per_layer_s": mlx_c,
        }
    )


def without_device(points: Measurements, device: str) -> Measurements:
    """The points with every measurement on `device` removed (leave-one-device-out)."""
    return points.model_copy(
        update={"measurements": [m for m in points.measurements if m.device_name != device]}
    )


@contextlib.contextmanager
def calibrated_on(points: Measurements) -> Iterator[None]:
    """Fit on `points` and use that calibration while the block runs (validation)."""
    with cal_mod.calibrated_on(fit(points)):
        yield
