"""Shared fixtures: the shipped table, machines built from plain values, a CLI runner.

Every test runs offline and without a GPU: hardware is described, never probed, except where a
test injects fake NVML / sysfs / cgroup trees.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from qwenfit.hardware.machine import GPU, Machine
from qwenfit.memory.record import Estimate
from qwenfit.specs.table import ModelSpec, SpecTable, load_specs
from qwenfit.units import GiB


@pytest.fixture(autouse=True)
def _isolated(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """No user configuration leaks in, the cache is private to the test session, and any
    attempt to open a network socket fails."""
    monkeypatch.setenv("QWENFIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    for var in (
        "QWENFIT_SPECS",
        "QWENFIT_VRAM",
        "QWENFIT_RAM",
        "QWENFIT_GPU",
        "QWENFIT_RUNTIME",
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
    ):
        monkeypatch.delenv(var, raising=False)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield


@pytest.fixture(scope="session")
def table() -> SpecTable:
    return load_specs()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def make_machine(
    vram_gib: float | None = None,
    ram_gib: float = 64,
    *,
    gpus: int = 1,
    bandwidth_gb_s: int | None = 1000,
    runtimes: dict[str, str | None] | None = None,
    free_gib: float | None = None,
    ram_gb_s: int | None = None,
) -> Machine:
    """A machine with `gpus` identical GPUs of `vram_gib` (None: no GPU) and `ram_gib` of RAM."""
    cards = []
    if vram_gib is not None:
        total = int(vram_gib * GiB)
        free = int((free_gib if free_gib is not None else vram_gib) * GiB)
        cards = [
            GPU(
                index=i,
                name="Test GPU",
                vendor="nvidia",
                memory_total_bytes=total,
                memory_free_bytes=free,
                bandwidth_bytes_per_s=bandwidth_gb_s * 10**9 if bandwidth_gb_s else None,
            )
            for i in range(gpus)
        ]
    ram = int(ram_gib * GiB)
    return Machine(
        source="hypothetical",
        ram_total_bytes=ram,
        ram_available_bytes=ram,
        ram_usable_bytes=ram,
        gpus=cards,
        runtimes=runtimes or {},
        ram_bandwidth_bytes_per_s=ram_gb_s * 10**9 if ram_gb_s else None,
    )


def assert_weights_are_the_files(est: Estimate, spec: ModelSpec) -> None:
    """A checkpoint read from its files is sized from those files: the estimate's weights are
    the artifact's text bytes as stored, plus, in llama.cpp with tied embeddings and the output
    layer on a GPU, the GPU copy of the token embeddings it makes; every part adds up."""
    artifact = next(a for a in spec.artifacts if a.precision == est.quant)
    embd = next((p.bytes for p in est.parts if p.detail.startswith("token embeddings")), 0)
    gguf_copy = (
        est.runtime in ("llama.cpp", "ollama")
        and spec.architecture.tie_word_embeddings
        and any("GPU copy of the tied embeddings" in p.detail for p in est.parts)
    )
    assert est.weights_bytes == artifact.text_bytes + (embd if gguf_copy else 0)
    assert est.total_bytes == sum(p.bytes for p in est.parts) > est.weights_bytes
