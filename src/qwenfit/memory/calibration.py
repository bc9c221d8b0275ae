"""The speed model's constants: the published measurements they are fitted to, and the fit.

The fit runs once, at build time (`tools/fit_speed.py` writes `data/speed_calibration.json`);
an estimate only reads the shipped file. `tests/test_speed_calibration.py` refits from
`data/speed_measurements.json` and requires the shipped file. Leave-one-device-out validation
pushes a refit without the predicted device (`calibrated_on`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qwenfit.datafiles import data_text

Backend = Literal["cuda", "rocm", "vulkan", "metal", "sycl", "cpu"]
BACKENDS: tuple[Backend, ...] = ("cuda", "rocm", "vulkan", "metal", "sycl", "cpu")
DeviceKind = Literal["gpu", "apple", "cpu"]
KINDS: tuple[DeviceKind, ...] = ("gpu", "apple", "cpu")
SCHEMA_VERSION = 1


class Measurement(BaseModel):
    """One published (or measured) speed, with what it takes to size the run it timed."""

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
    context: int = Field(gt=0)
    kv_cache: str
    tokens_per_s: float = Field(gt=0)
    runtime: str
    source: str = Field(min_length=1)
    kind: Literal["decode", "prefill"] = "decode"
    prompt_tokens: int | None = Field(None, gt=0, description="Prefill: the prompt length timed.")
    depth: int | None = Field(
        None,
        ge=0,
        description="Tokens already in the KV cache: while decoding (null: "
        "`context`), or before a prefill prompt (null: 0).",
    )
    backend: Backend | None = Field(
        None, description="llama.cpp backend; null: the GPU vendor's (CUDA, ROCm, Metal)."
    )
    server: bool = Field(
        False, description="Prefill timed per request through a server (its fixed cost counts)."
    )
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
        None, gt=0, description="The published file's weights when it is not the stock quant."
    )
    gpus: int = Field(1, ge=1, description="GPUs in tensor parallel (prefill points).")

    @model_validator(mode="after")
    def _consistent(self) -> Measurement:
        """The fields a point needs, by kind and device (an error naming the point)."""
        where = f"{self.model} {self.quant} on {self.gpu or 'cpu'} ({self.source[:60]})"
        if self.device == "cpu":
            if self.gpu is not None or not self.bandwidth_bytes_per_s:
                raise ValueError(f"{where}: a CPU point has no gpu and a measured bandwidth")
        elif not self.gpu:
            raise ValueError(f"{where}: a GPU point names its GPU")
        elif self.bandwidth_bytes_per_s and not self.device_source:
            raise ValueError(f"{where}: a GPU outside the catalog cites its device_source")
        if self.kind == "prefill":
            if self.prompt_tokens is None:
                raise ValueError(f"{where}: a prefill point states its prompt_tokens")
            if self.device == "cpu":
                raise ValueError(f"{where}: prefill points are GPU points")
        elif self.prompt_tokens is not None or self.server:
            raise ValueError(f"{where}: prompt_tokens and server are prefill fields")
        return self

    @property
    def device_name(self) -> str:
        """What leave-one-device-out groups by."""
        return self.gpu or "cpu"


class Measurements(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    note: str
    measurements: list[Measurement]


class PrefillFit(BaseModel):
    """Seconds per prompt token = dense matmul FLOPs / (dense x F) + routed-expert FLOPs /
    (moe x F) + attention FLOPs / (attention x F) + per_layer_token_s x layers."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    dense: float = Field(gt=0)
    moe: float = Field(gt=0)
    attention: float = Field(gt=0)
    per_layer_token_s: float = Field(ge=0)


class Calibration(BaseModel):
    """What the measurements give (docs/estimation.md, Speed): decode efficiencies of peak
    bandwidth per kind of bytes and device kind, a fixed cost per layer and token per backend,
    prefill efficiencies of peak FP16 tensor FLOPS, a server's fixed cost per request, and a
    speed factor per runtime relative to the llama.cpp fit (MLX: its own per-layer cost)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    schema_version: int = SCHEMA_VERSION
    points: int = Field(ge=0, description="Measurements fitted.")
    weights: dict[DeviceKind, float] = Field(description="Dense weights (and state) efficiency.")
    experts: dict[DeviceKind, float] = Field(description="Routed-expert reads' efficiency.")
    kv: float = Field(gt=0, description="KV cache reads' efficiency: a backend without its own.")
    kv_by_backend: dict[Backend, float] = Field(
        default_factory=dict, description="KV cache reads' efficiency per backend."
    )
    per_layer_s: dict[Backend, float] = Field(description="Fixed decode cost per layer, token.")
    moe_per_layer_s: float = Field(
        0.0, ge=0, description="MoE models: a further fixed decode cost per layer and token."
    )
    mlx_weights: float | None = Field(None, description="MLX on Apple: weights efficiency.")
    mlx_per_layer_s: float | None = Field(None, description="MLX: fixed cost per layer, token.")
    prefill: dict[DeviceKind, PrefillFit]
    server_request_s: float = Field(ge=0, description="llama-server's fixed cost per request.")
    runtime: dict[str, float] = Field(description="Decode factor relative to llama.cpp.")


_STACK: list[Calibration] = []  # calibrations replacing the shipped one (validation only)


@functools.cache
def shipped() -> Calibration:
    return Calibration.model_validate_json(data_text("speed_calibration.json"))


def current() -> Calibration:
    """The calibration in use: the shipped file unless `calibrated_on` pushed another."""
    return _STACK[-1] if _STACK else shipped()


@contextlib.contextmanager
def calibrated_on(cal: Calibration) -> Iterator[None]:
    """Use `cal` instead of the shipped calibration while the block runs."""
    _STACK.append(cal)
    try:
        yield
    finally:
        _STACK.pop()


@functools.cache
def measurements() -> Measurements:
    """The shipped calibration points (`data/speed_measurements.json`)."""
    return Measurements.model_validate_json(data_text("speed_measurements.json"))
