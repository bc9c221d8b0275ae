"""The estimator: its invariants, its runtime rules, and its errors."""

from __future__ import annotations

import itertools

import pytest
from conftest import make_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenfit import estimate, max_context
from qwenfit.errors import UnsupportedError, UsageError
from qwenfit.specs.table import SpecTable
from qwenfit.units import GiB, KiB, MiB

SIZES = ["0.8b", "2b", "4b", "9b", "27b", "35b-a3b", "122b-a10b", "397b-a17b"]
RUNTIMES = ["llama.cpp", "ollama", "vllm", "transformers"]


@pytest.mark.parametrize(
    ("size", "kib_per_token"),
    [
        ("0.8b", 12),
        ("2b", 12),
        ("4b", 32),
        ("9b", 32),
        ("27b", 64),
        ("35b-a3b", 20),
        ("122b-a10b", 24),
        ("397b-a17b", 30),
    ],
)
def test_kv_only_on_full_attention_layers(table: SpecTable, size: str, kib_per_token: int) -> None:
    """f16 K+V per token = full layers (1 in 4) x 2 x kv heads x 256 x 2 bytes."""
    e = estimate(size, runtime="llama.cpp", quant="q4_k_m", context=262144, table=table)
    assert e.kv_cache_bytes == kib_per_token * KiB * 262144


def test_linear_state_does_not_grow_with_context(table: SpecTable) -> None:
    short = estimate("9b", runtime="llama.cpp", context=4096, table=table)
    long = estimate("9b", runtime="llama.cpp", context=262144, table=table)
    assert short.linear_state_bytes == long.linear_state_bytes
    # llama.cpp: 24 GDN layers x (3 x 8192 conv + 128 x 4096 state) x F32 = 50.25 MiB
    assert short.linear_state_bytes == int(50.25 * MiB)


def test_llamacpp_pads_cells_and_counts_all_slots(table: SpecTable) -> None:
    e = estimate("9b", runtime="llama.cpp", context=1000, parallel=3, table=table)
    cells = 3072  # 3 x 1000 = 3000, padded to a multiple of 256
    assert e.kv_cache_bytes == cells * 32 * KiB
    assert e.linear_state_bytes == 3 * int(50.25 * MiB)


@pytest.mark.parametrize(("kv", "ratio"), [("q8_0", 34 / 64), ("q4_0", 18 / 64)])
def test_quantized_kv_uses_ggml_block_sizes(table: SpecTable, kv: str, ratio: float) -> None:
    f16 = estimate("27b", runtime="llama.cpp", context=32768, table=table)
    q = estimate("27b", runtime="llama.cpp", context=32768, kv_cache=kv, table=table)
    assert q.kv_cache_bytes == f16.kv_cache_bytes * ratio


def test_quantized_kv_needs_flash_attention(table: SpecTable) -> None:
    with pytest.raises(UnsupportedError, match="flash attention"):
        estimate(
            "9b", runtime="llama.cpp", kv_cache="q8_0", flash_attn="off", context=4096, table=table
        )


def test_weights_are_the_artifact_bytes_without_mtp(table: SpecTable) -> None:
    spec = table.get("27b")
    e = estimate(spec, runtime="vllm", quant="bf16", context=4096, table=table)
    bf16 = spec.artifact("bf16", "safetensors")
    assert bf16 is not None
    assert e.weights_bytes == bf16.text_bytes
    assert e.vision_bytes == bf16.vision_bytes


def test_text_only_drops_the_vision_tower(table: SpecTable) -> None:
    for rt in RUNTIMES:
        e = estimate("9b", runtime=rt, context=4096, text_only=True, table=table)
        assert e.vision_bytes == 0


def test_cpu_only_machine_places_everything_in_ram(table: SpecTable) -> None:
    e = estimate("4b", runtime="llama.cpp", context=8192, machine=make_machine(None), table=table)
    assert e.gpu_bytes == 0 and e.ram_bytes == e.total_bytes
    assert e.overhead_bytes == 0


@pytest.mark.parametrize(("vram", "ctx"), [(16, 4096), (24, 32768), (48, 262144)])
def test_ollama_default_context_follows_vram(table: SpecTable, vram: int, ctx: int) -> None:
    e = estimate("4b", runtime="ollama", machine=make_machine(vram), table=table)
    assert (e.context, e.context_source) == (ctx, "runtime default")


def test_llama_server_default_context_is_fitted_to_memory(table: SpecTable) -> None:
    machine = make_machine(12)
    e = estimate("9b", runtime="llama.cpp", machine=machine, table=table)
    assert e.context_source == "fitted to memory"
    assert 4096 <= e.context < 262144
    assert e.gpu_bytes <= 11 * GiB  # 12 GiB less --fit's 1 GiB target


def test_unsupported_combinations_name_what_is_allowed(table: SpecTable) -> None:
    with pytest.raises(UnsupportedError, match=r"available: .*q4_k_m"):
        estimate("9b", runtime="llama.cpp", quant="fp8", table=table)
    with pytest.raises(UnsupportedError, match="unknown runtime"):
        estimate("9b", runtime="mlc", table=table)
    with pytest.raises(UnsupportedError, match="no build"):
        estimate("397b-a17b", runtime="ollama", table=table)
    with pytest.raises(UsageError, match="between 1 and 1010000"):
        estimate("9b", runtime="vllm", context=2_000_000, table=table)


def test_quant_names_are_case_insensitive(table: SpecTable) -> None:
    assert (
        estimate("9b", runtime="llama.cpp", quant="Q4_K_M", context=4096, table=table).quant
        == "q4_k_m"
    )
    assert (
        estimate("27b", runtime="vllm", quant="GPTQ-Int4", context=4096, table=table).quant
        == "gptq-int4"
    )


def test_beyond_native_context_is_noted(table: SpecTable) -> None:
    e = estimate("9b", runtime="vllm", context=500_000, table=table)
    assert any("YaRN" in n for n in e.notes)


@settings(max_examples=60, deadline=None)
@given(
    size=st.sampled_from(SIZES),
    runtime=st.sampled_from(["llama.cpp", "vllm", "transformers"]),
    ctx=st.integers(1, 262144),
    extra=st.integers(1, 65536),
    parallel=st.integers(1, 8),
    text_only=st.booleans(),
)
def test_longer_context_never_gives_a_smaller_estimate(
    size: str,
    runtime: str,
    ctx: int,
    extra: int,
    parallel: int,
    text_only: bool,
) -> None:
    short = estimate(size, runtime=runtime, context=ctx, parallel=parallel, text_only=text_only)
    longer = estimate(
        size,
        runtime=runtime,
        context=min(262144, ctx + extra),
        parallel=parallel,
        text_only=text_only,
    )
    assert longer.total_bytes >= short.total_bytes
    assert short.total_bytes == sum(p.bytes for p in short.parts)
    assert short.gpu_bytes + short.ram_bytes == short.total_bytes


@settings(max_examples=40, deadline=None)
@given(size=st.sampled_from(SIZES), budget_gib=st.floats(0.5, 300))
def test_max_context_is_the_largest_that_fits(size: str, budget_gib: float) -> None:
    """With a budget, the GPU bytes stay within it (token embeddings live in RAM)."""
    budget = int(budget_gib * GiB)
    ctx = max_context(size, budget, runtime="llama.cpp")
    if ctx is None:
        assert estimate(size, runtime="llama.cpp", context=1).gpu_bytes > budget
        return
    assert estimate(size, runtime="llama.cpp", context=ctx).gpu_bytes <= budget
    if ctx < 262144:
        assert estimate(size, runtime="llama.cpp", context=ctx + 256).gpu_bytes > budget


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_fast_construction_equals_the_validated_record(
    table: SpecTable, size: str, runtime: str
) -> None:
    """Estimates are built without re-validation (the hot path); validating the same values
    must give the same record, on one GPU and offloaded, so the shortcut hides no error."""
    from qwenfit import Estimate

    machines = [None, make_machine(8, 32)]
    for machine in machines:
        try:
            e = estimate(size, runtime=runtime, context=8192, machine=machine, table=table)
        except UsageError:  # a runtime without a build of this size
            continue
        again = Estimate.model_validate(e.model_dump())
        assert again.__dict__ == e.__dict__  # every field; the spec it carries is not data
        assert e.spec is not None and again.spec is None
        assert [type(p) for p in again.parts] == [type(p) for p in e.parts]


def test_layer_runs_cover_every_layer_once() -> None:
    """The O(1) per-run sums rely on runs that tile layers 0..n_layer exactly."""
    from qwenfit.memory.llamacpp import layer_segments
    from qwenfit.memory.record import Layout

    cases = [
        Layout(kind="gpu", devices=[0]),
        Layout(kind="cpu"),
        Layout(kind="offload", devices=[0], gpu_layers=20),
        Layout(kind="multi_gpu", devices=[0, 1, 2], tensor_split=[10, 30, 25]),
    ]
    for layout in cases:
        runs = layer_segments(layout, 64)
        assert runs[0][1] == 0 and runs[-1][2] == 65
        assert all(a[2] == b[1] for a, b in itertools.pairwise(runs))
    assert layer_segments(Layout(kind="offload", devices=[0], gpu_layers=20), 64) == [
        (None, 0, 45),
        (0, 45, 65),
    ]


@pytest.mark.parametrize("size", ["0.8b", "9b", "27b", "35b-a3b"])
@pytest.mark.parametrize("gpu_gib", [6, 12, 24])
def test_block_solver_equals_the_token_level_one(size: str, gpu_gib: int) -> None:
    """llama.cpp's memory is constant within a 256-cell block, so the solver bisects over block
    ends; it must land where a token-by-token bisection lands."""
    from qwenfit.memory import context
    from qwenfit.memory import layout as layouts
    from qwenfit.memory.config import configure, plan
    from qwenfit.memory.options import Options

    m = make_machine(gpu_gib, 64)
    cfg = plan(configure(size, Options(runtime="llama.cpp", quant="q4_k_m"), m), 4096, m, GiB)
    assert context.block_of(cfg) == 256

    def over(ctx: int) -> list[int]:
        return layouts.shortfall_by_pool(cfg.build(ctx), m, GiB)

    native = cfg.spec.context.native
    assert context.max_context_on(cfg, m, GiB) == context.largest(native, over, 1)
