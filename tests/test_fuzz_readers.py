"""Property-based fuzzing of every reader (issue 17): GGUF headers, safetensors headers,
config.json, index files, spec tables, machine files and the public API, mutated field by field
from real ones (tests/fixtures/checkpoints/fuzz_inputs.py). The only outcomes allowed are a
result or a QwenfitError with a one-line message; anything else fails the example.

Everyday: a bounded number of examples per reader, each under a deadline. `slow`: more examples,
and the benchmark script under an address-space limit (RLIMIT_AS), so an input that allocates
without bound fails as MemoryError instead of eating the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import fuzz_inputs as fz
import pytest
from hypothesis import HealthCheck, given, settings

REPO = Path(__file__).resolve().parents[1]
EVERYDAY = settings(
    max_examples=int(os.environ.get("QWENFIT_FUZZ_EXAMPLES", "25")),
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@pytest.mark.parametrize("target", sorted(fz.TARGETS))
def test_every_reader_gives_a_result_or_a_qwenfit_error(target: str) -> None:
    strategy, run = fz.TARGETS[target]

    @EVERYDAY
    @given(strategy)
    def prop(case: Any) -> None:
        assert run(case) in {
            "ok",
            "BadFileError",
            "UsageError",
            "UnknownModelError",
            "UnsupportedError",
            "SpecError",
            "NoFitError",
            "QwenfitError",
        }

    prop()


def test_the_seeds_are_valid_inputs() -> None:
    """Mutations start from files that size fine, so every reader path is reached."""
    import json

    assert (
        fz.fuzz_folder(
            fz._folder(json.dumps(fz.SEED_CONFIG).encode(), fz._header(fz.SEED_ENTRIES)), fz.TABLE
        )
        == "ok"
    )
    raw = fz.pack_gguf(fz.SEED_KVS, fz.SEED_TENSORS, None, fz.SEED_DATA)
    assert fz.fuzz_gguf(fz._gguf_file(raw), fz.TABLE) == "ok"


def _benchmark(examples: int, timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "fuzz_readers.py"),
            "--examples",
            str(examples),
            "--memory-mib",
            "3072",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )


def test_fuzz_benchmark_runs_under_a_memory_limit() -> None:
    proc = _benchmark(5, 300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "examples/s" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(fz.TARGETS))
def test_many_examples(target: str) -> None:
    strategy, run = fz.TARGETS[target]

    @settings(EVERYDAY, max_examples=200)
    @given(strategy)
    def prop(case: Any) -> None:
        run(case)

    prop()
