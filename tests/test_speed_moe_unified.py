"""Issue 25: MoE decode has a fixed cost per layer fitted from the 122B-A10B points, unified-memory
GPUs other than Apple's run their vendor's backend with the GPU fit, KV efficiency per backend
only where depth sweeps time it, and Apple's fitted per-core FLOPS meet the prefill fit."""

from __future__ import annotations

from typing import Any

import pytest

from qwenfit import estimate, with_overrides
from qwenfit.hardware.catalog import catalog_gpus
from qwenfit.hardware.machine import Machine
from qwenfit.memory import calibration, speed, speed_fit
from qwenfit.memory.calibration import Measurement
from qwenfit.specs.table import load_specs
from qwenfit.units import TiB

STRIX = "Ryzen AI Max+ 395"


def _points(gpu: str, model: str, kind: str = "decode") -> list[Measurement]:
    return [
        m
        for m in calibration.measurements().measurements
        if m.gpu == gpu and m.model == model and m.kind == kind
    ]


def _decode(m: Measurement) -> float:
    """qwenfit's decode rate for a shipped point under the calibration in use."""
    est = speed_fit.point_estimate(m)
    if m.weights_bytes:
        scale = m.weights_bytes / est.weights_bytes
        parts = [
            p.model_copy(update={"read_per_token_bytes": round(p.read_per_token_bytes * scale)})
            if p.part == "weights"
            else p
            for p in est.parts
        ]
        est = est.model_copy(update={"parts": parts})
    gpu = speed_fit.point_gpu(m)
    assert gpu is not None
    machine = Machine(
        source="hypothetical",
        ram_total_bytes=TiB,
        ram_available_bytes=TiB,
        ram_usable_bytes=TiB,
        gpus=[gpu.model_copy(update={"memory_total_bytes": TiB, "memory_free_bytes": TiB})],
    )
    rate = speed.decode_rate(est, machine, load_specs(), m.depth or 0, backend=m.backend)
    assert rate is not None
    return rate


@pytest.mark.parametrize(
    ("name", "backend", "kind"),
    [("Strix Halo", "rocm", "gpu"), ("DGX Spark", "cuda", "gpu"), ("Apple M4", "metal", "apple")],
)
def test_unified_memory_gpus_run_their_vendors_backend(name: str, backend: str, kind: str) -> None:
    gpu = catalog_gpus(name)[0]
    assert gpu.unified_memory
    assert speed.backend_of(gpu) == backend and speed.device_kind(gpu) == kind


def test_the_moe_layer_cost_is_fitted_and_meets_the_122b_points() -> None:
    c = calibration.shipped()
    assert c.moe_per_layer_s > 0
    assert c.experts["gpu"] > c.experts["cpu"]  # the CPU borrows the lowest measured ratio
    points = _points(STRIX, "qwen3.5-122b-a10b")
    assert len(points) == 7
    for m in points:  # in-sample within 20 %
        assert abs(_decode(m) / m.tokens_per_s - 1) < 0.2, m.source
    rest = speed_fit.without_device(calibration.measurements(), STRIX)
    with speed_fit.calibrated_on(rest):  # Strix Halo left out: still within 35 %
        for m in points:
            assert abs(_decode(m) / m.tokens_per_s - 1) < 0.35, m.source


def test_the_usb4_egpu_is_evaluated_not_fitted() -> None:
    assert not [m for m in calibration.measurements().measurements if m.gpu == "Tesla P40"]


def test_kv_efficiency_per_backend_only_where_deep_points_time_it() -> None:
    c = calibration.shipped()
    deep: dict[str, int] = {}
    for m in calibration.measurements().measurements:
        at = m.context if m.depth is None else m.depth
        if m.kind == "decode" and m.runtime == "llama.cpp" and at >= speed_fit.DEEP_KV_TOKENS:
            b = m.backend or speed.backend_of(speed_fit.point_gpu(m))
            deep[b] = deep.get(b, 0) + 1
    own = {b for b, n in deep.items() if n >= speed_fit.MIN_DEEP_POINTS}
    assert set(c.kv_by_backend) == own and {"cuda", "rocm", "vulkan"} <= own
    assert "metal" not in c.kv_by_backend


def test_apple_per_core_flops_meet_the_prefill_fit() -> None:
    """The per-core TFLOPS in data/gpus.json is the rate at which the published M4 pp1024 runs
    meet the GPU prefill fit: both within 10 % with the shipped calibration."""
    machine: Any = with_overrides(None, gpu="Apple M4", ram="32GB")
    points = [
        m for model in ("qwen3.5-9b", "qwen3.5-4b") for m in _points("Apple M4", model, "prefill")
    ]
    assert len(points) == 2
    for m in points:
        e = estimate(
            m.model,
            runtime="llama.cpp",
            quant=m.quant,
            context=4096,
            text_only=True,
            machine=machine,
        )
        rate = speed.prefill_rate(e, machine, load_specs(), m.prompt_tokens or 512)
        assert rate is not None and abs(rate / m.tokens_per_s - 1) < 0.1, (m.model, rate)


def test_every_apple_chip_uses_the_one_fitted_per_core_rate() -> None:
    """The Apple rows of data/gpus.json are cores x the per-core rate their source states (one
    rate for every chip, refitted when the prefill fit moves)."""
    import json
    import re

    from qwenfit.datafiles import data_text

    rows = [
        g
        for g in json.loads(data_text("gpus.json"))["gpus"]
        if "TFLOPS per core" in (g.get("flops_source") or "")
    ]
    rates = set()
    for g in rows:
        found = re.search(r"(\d+) GPU cores.* x ([\d.]+) TFLOPS per core", g["flops_source"])
        assert found, g["name"]
        cores, rate = int(found[1]), float(found[2])
        rates.add(rate)
        assert g["fp16_tensor_tflops"] == pytest.approx(cores * rate, abs=0.05), g["name"]
    assert len(rows) >= 16 and len(rates) == 1
