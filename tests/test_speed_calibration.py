"""The shipped speed calibration is the fit of the shipped measurements, and the measurement
file's cross-field rules are errors that name the point."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from qwenfit.datafiles import data_text
from qwenfit.memory import calibration, speed_fit
from qwenfit.memory.calibration import Measurement


def test_shipped_calibration_equals_a_refit() -> None:
    refit = speed_fit.fit(calibration.measurements())
    assert refit == calibration.shipped()
    assert json.loads(data_text("speed_calibration.json"))["schema_version"] == 1


def test_the_calibration_is_read_not_fitted_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("fitted at run time")

    monkeypatch.setattr(speed_fit, "fit", refuse)
    from qwenfit import estimate, with_overrides

    e = estimate(
        "9b",
        runtime="llama.cpp",
        quant="q4_k_m",
        context=4096,
        text_only=True,
        machine=with_overrides(None, gpu="RTX 4090", ram="64GB"),
    )
    assert e.tokens_per_second


BASE = {
    "model": "qwen3.5-9b",
    "quant": "q4_k_m",
    "device": "gpu",
    "gpu": "RTX 4090",
    "bandwidth_bytes_per_s": None,
    "context": 4096,
    "kv_cache": "f16",
    "tokens_per_s": 90.0,
    "runtime": "llama.cpp",
    "source": "https://example.org/run",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "prefill"}, "prompt_tokens"),
        ({"prompt_tokens": 512}, "prefill fields"),
        ({"device": "cpu"}, "measured bandwidth"),
        ({"gpu": None}, "names its GPU"),
        ({"bandwidth_bytes_per_s": 10**12}, "device_source"),
        (
            {
                "kind": "prefill",
                "prompt_tokens": 512,
                "device": "cpu",
                "gpu": None,
                "bandwidth_bytes_per_s": 10**11,
            },
            "GPU points",
        ),
    ],
)
def test_inconsistent_points_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Measurement.model_validate(BASE | change)
    Measurement.model_validate(BASE)


def test_bounded_least_squares_respects_its_bounds() -> None:
    rows = [{"a": 1.0, "b": 1.0}, {"a": 2.0, "b": 0.0}, {"a": 0.0, "b": 3.0}]
    x = speed_fit.bounded_lsq(rows, {"a": 0.6})
    assert x["a"] >= 0.6 and x["b"] >= 0
    free = speed_fit.bounded_lsq(rows, {})
    assert free["a"] == pytest.approx(0.5, abs=0.1)
