"""The MLX runtime: memory model against MLX's own accounting, runtime rules, launch flags.

Fixture: tests/fixtures/measured/mlx_memory.json (benchmarks/mlx/measure_memory.py: mlx-lm's own
Qwen3.5 classes built on MLX's CPU backend, their allocations read with mx.get_active_memory /
get_peak_memory and the cache objects' nbytes). A live rerun of one case runs when mlx is
installed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from qwenfit import estimate, load_specs, with_overrides
from qwenfit.cli import main
from qwenfit.errors import UnsupportedError
from qwenfit.launch.mlx import mlx_command
from qwenfit.memory import mlx
from qwenfit.specs import arch

MEASURED = json.loads(
    (Path(__file__).parent / "fixtures" / "measured" / "mlx_memory.json").read_text()
)
HELP = Path(__file__).parent / "fixtures" / "runtime_help"
MAC = with_overrides(None, gpu="M3 Max", ram="64GB")
TOLERANCE = 0.05


def _slice(name: str, layers: int):  # type: ignore[no-untyped-def]
    a = load_specs().get(name).architecture
    return a.model_copy(update={"num_hidden_layers": layers})


@pytest.mark.parametrize("row", MEASURED["weights"], ids=lambda r: f"{r['model']}-{r['precision']}")
def test_weights_match_mlx(row: dict[str, object]) -> None:
    a = load_specs().get(str(row["model"])).architecture
    model = mlx.text_weight_bytes(a, mlx.PRECISION_BITS[str(row["precision"])])
    assert model == row["weights_bytes"]  # tensor by tensor, exactly
    assert abs(model - int(row["active_loaded_bytes"])) <= TOLERANCE * model  # type: ignore[call-overload]


@pytest.mark.parametrize(
    "row", MEASURED["prefill"], ids=lambda r: f"{r['model']}-{r['prompt_tokens']}"
)
def test_cache_and_resident_memory_match_mlx(row: dict[str, int]) -> None:
    a = _slice(str(row["model"]), row["layers"])
    n = row["prompt_tokens"]
    assert mlx.text_weight_bytes(a, 16) == row["weights_bytes"]
    assert mlx.kv_cache_bytes(a, n, "bf16", 1) == row["kv_cache_bytes"]
    assert mlx.linear_state_bytes(a, 1) == row["linear_state_bytes"]
    resident = row["weights_bytes"] + row["kv_cache_bytes"] + row["linear_state_bytes"]
    assert abs(resident - row["active_after_bytes"]) <= TOLERANCE * row["active_after_bytes"]


@pytest.mark.parametrize(
    "row", MEASURED["prefill"], ids=lambda r: f"{r['model']}-{r['prompt_tokens']}"
)
def test_prefill_peak_within_5_percent(row: dict[str, int]) -> None:
    """Peak = weights + cache + state + one prefill step's activations. On the CPU backend
    mlx-lm runs the Gated DeltaNet recurrence as ops (gated_delta_ops: the lazy graph holds one
    float32 [Hv, Dv, Dk] state per token of the layer being evaluated) where Metal runs a fused
    kernel: that CPU-only term is added here, not in the model of a Mac."""
    a = _slice(str(row["model"]), row["layers"])
    n = row["prompt_tokens"] - 1  # the last token goes through the final step
    per_step = a.linear_num_value_heads * a.linear_key_head_dim * a.linear_value_head_dim * 4
    cpu_only = n * per_step
    model = (
        mlx.text_weight_bytes(a, 16)
        + mlx.kv_cache_bytes(a, n + 1, "bf16", 1)
        + mlx.linear_state_bytes(a, 1)
        + mlx.compute_bytes(a, n, 1)
        + cpu_only
    )
    assert abs(model - row["peak_bytes"]) <= TOLERANCE * row["peak_bytes"]


def test_kv_cache_grows_in_steps_of_256() -> None:
    a = load_specs().get("9b").architecture
    per_token = arch.kv_elements_per_token(a) * 2
    assert mlx.kv_cache_bytes(a, 1, "bf16", 1) == 256 * per_token
    assert mlx.kv_cache_bytes(a, 257, "bf16", 1) == 512 * per_token
    # --kv-bits 8: 64 values -> 64 bytes + bf16 scale and bias, after --quantized-kv-start
    assert mlx.kv_cache_bytes(a, 8192, "mlx-q8", 1) == 8192 * per_token // 2 * 68 // 64
    assert mlx.kv_cache_bytes(a, 4096, "mlx-q8", 1) == 4096 * per_token


def test_spec_rows_are_the_recipe() -> None:
    table = load_specs()
    for spec in table.family_models("qwen3.5"):  # the mlx-community Qwen3.5 conversions
        rows = [a for a in spec.artifacts if a.format == "mlx"]
        assert {a.precision for a in rows} == set(mlx.PRECISION_BITS)
        for a in rows:
            assert a.text_bytes == mlx.text_weight_bytes(
                spec.architecture, mlx.PRECISION_BITS[a.precision]
            )
            assert not a.exact and a.repo and a.repo.startswith("mlx-community/")


def test_mlx_needs_apple_silicon(runner: CliRunner) -> None:
    with pytest.raises(UnsupportedError, match="Apple Silicon"):
        estimate("9b", runtime="mlx", machine=with_overrides(None, gpu="RTX 4090", ram="64GB"))
    args = ["estimate", "9b", "--runtime", "mlx", "--vram", "24GB", "--ram", "64GB"]
    r = runner.invoke(main, args)
    assert r.exit_code == 2 and "Apple Silicon" in r.stderr


def test_mlx_budget_is_metals_share() -> None:
    e = estimate("27b", runtime="mlx", quant="mlx-4bit", context=32768, machine=MAC)
    assert e.layout.kind == "gpu" and e.ram_bytes == 0
    assert MAC.gpus[0].memory_total_bytes == 64 * 10**9 * 3 // 4  # > 36 GiB: 3/4 of RAM
    assert e.tokens_per_second and e.tokens_per_second > 0


def test_quantized_kv_is_one_request_at_a_time() -> None:
    with pytest.raises(UnsupportedError, match="one request at a time"):
        estimate("9b", runtime="mlx", kv_cache="mlx-q4", parallel=2, context=8192)


def _flags(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[A-Za-z][\w-]*)", text))


@pytest.mark.parametrize("text_only", [True, False])
@pytest.mark.parametrize("kv", ["bf16", "mlx-q8"])
def test_launch_flags_exist_in_help(text_only: bool, kv: str) -> None:
    table = load_specs()
    e = estimate("9b", runtime="mlx", kv_cache=kv, context=16384, text_only=text_only)
    argv = mlx_command(e, table.get("9b"), table).steps[-1].argv
    help_file = "mlx_lm-server.txt" if text_only else "mlx_vlm-server.txt"
    known = _flags((HELP / help_file).read_text())
    assert argv[0] == ("mlx_lm.server" if text_only else "mlx_vlm.server")
    for token in argv[1:]:
        if token.startswith("--"):
            assert token in known, token
    assert argv[argv.index("--model") + 1] == "mlx-community/Qwen3.5-9B-4bit"


@pytest.mark.slow
def test_live_mlx_weights_match() -> None:
    """Builds the 0.8B at mlx-4bit with mlx-lm itself (when installed) and reads nbytes."""
    pytest.importorskip("mlx.core")
    pytest.importorskip("mlx_lm")

    import importlib.util

    # benchmarks/mlx/ shares its folder name with the mlx package: load the rig by its path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "mlx" / "measure_memory.py"
    spec = importlib.util.spec_from_file_location("measure_memory", path)
    assert spec is not None and spec.loader is not None
    measure_memory = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(measure_memory)
    row = measure_memory.measure_weights("qwen3.5-0.8b", "mlx-4bit")
    a = load_specs().get("0.8b").architecture
    assert row["weights_bytes"] == mlx.text_weight_bytes(a, 4)
