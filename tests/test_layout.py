"""Beyond one GPU: expert and layer offload, layer split, tensor and pipeline parallelism."""

from __future__ import annotations

import pytest
from conftest import make_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenfit import estimate
from qwenfit.fit.preflight import check
from qwenfit.fit.verdict import check_fit
from qwenfit.launch.commands import launch_command
from qwenfit.memory.layout import smallest_within, valid_tensor_parallel
from qwenfit.memory.llamacpp import groups, layer_segments
from qwenfit.recommender.ranking import recommend
from qwenfit.specs.table import SpecTable
from qwenfit.units import GiB


def test_moe_experts_go_to_ram_first(table: SpecTable) -> None:
    m = make_machine(16, 64)
    e = estimate("35b-a3b", runtime="llama.cpp", quant="q4_k_m", context=32768, machine=m)
    assert e.layout.kind == "offload" and e.layout.cpu_moe_layers
    assert e.layout.gpu_layers is None  # every layer's attention stays on the GPU
    fit = check_fit(e, m)
    assert fit.fits and fit.devices[0].need_bytes <= fit.devices[0].budget_bytes
    g = groups(table.get("35b-a3b"), table.get("35b-a3b").artifact("q4_k_m", "gguf"))  # type: ignore[arg-type]
    in_ram = sum(g.experts[: e.layout.cpu_moe_layers])
    assert e.ram_bytes >= in_ram + g.token_embd
    argv = launch_command(e).steps[0].argv
    assert argv[argv.index("--n-cpu-moe") + 1] == str(e.layout.cpu_moe_layers)


def test_fewest_experts_in_ram(table: SpecTable) -> None:
    m = make_machine(16, 64)
    e = estimate("35b-a3b", runtime="llama.cpp", quant="q4_k_m", context=32768, machine=m)
    one_fewer = e.layout.model_copy(update={"cpu_moe_layers": e.layout.cpu_moe_layers - 1})  # type: ignore[operator]
    from qwenfit.memory.config import configure
    from qwenfit.memory.options import Options

    cfg = configure("35b-a3b", Options(runtime="llama.cpp", quant="q4_k_m"), m)
    assert not check_fit(cfg.with_layout(one_fewer).build(32768), m).fits


def test_dense_model_keeps_the_last_layers_on_the_gpu() -> None:
    m = make_machine(12, 64)
    e = estimate("27b", runtime="llama.cpp", quant="q4_k_m", context=32768, machine=m)
    assert e.layout.kind == "offload" and e.layout.gpu_layers is not None
    assert 0 < e.layout.gpu_layers < 65
    assert check_fit(e, m).fits
    argv = launch_command(e).steps[0].argv
    assert argv[argv.index("-ngl") + 1] == str(e.layout.gpu_layers)


def test_ollama_splits_layers_but_not_experts() -> None:
    e = estimate("35b-a3b", runtime="ollama", context=8192, machine=make_machine(16, 64))
    assert e.layout.kind == "offload" and not e.layout.cpu_moe_layers


def test_layer_runs_follow_ngl_semantics() -> None:
    from qwenfit.memory.record import Layout

    owners = layer_segments(Layout(kind="offload", devices=[0], gpu_layers=3), n_layer=4)
    assert owners == [(None, 0, 2), (0, 2, 5)]  # the last 3 of 5 (4 layers + output)
    split = layer_segments(Layout(kind="multi_gpu", devices=[0, 1], tensor_split=[2, 3]), 4)
    assert split == [(0, 0, 2), (1, 2, 5)]


def test_two_gpus_split_layers_by_memory() -> None:
    m = make_machine(24, 64, gpus=2)
    e = estimate("27b", runtime="llama.cpp", quant="q8_0", context=32768, machine=m)
    assert e.layout.kind == "multi_gpu" and e.layout.tensor_split is not None
    assert sum(e.layout.tensor_split) == 65
    assert set(e.device_bytes) == {0, 1}
    assert all(b <= 23 * GiB for b in e.device_bytes.values())
    assert check_fit(e, m).fits
    argv = launch_command(e).steps[0].argv
    assert "--tensor-split" in argv


def test_tied_embeddings_cost_a_gpu_copy_of_the_output() -> None:
    gpu = estimate("0.8b", runtime="llama.cpp", quant="bf16", context=4096, text_only=True)
    cpu = estimate(
        "0.8b",
        runtime="llama.cpp",
        quant="bf16",
        context=4096,
        text_only=True,
        machine=make_machine(None, 64),
    )
    assert gpu.weights_bytes > cpu.weights_bytes  # token_embd in RAM + its GPU copy as output


@pytest.mark.parametrize(
    ("size", "quant", "sizes"),
    [
        ("27b", "bf16", [1, 2, 4, 8]),
        ("35b-a3b", "fp8", [1, 2, 4]),  # 512-wide experts: 128-blocks allow TP <= 4
        ("397b-a17b", "fp8", [1, 2, 4, 8]),
    ],
)
def test_vllm_tensor_parallel_sizes_respect_heads_and_blocks(
    table: SpecTable, size: str, quant: str, sizes: list[int]
) -> None:
    assert valid_tensor_parallel(table.get(size), quant) == sizes


def test_vllm_picks_the_smallest_tensor_parallel_that_fits() -> None:
    m = make_machine(80, 1024, gpus=8, bandwidth_gb_s=3350)
    e = estimate("397b-a17b", runtime="vllm", quant="fp8", context=32768, machine=m)
    assert e.layout.kind == "multi_gpu" and e.layout.tensor_parallel == 8
    assert check_fit(e, m).fits
    small = estimate("27b", runtime="vllm", quant="bf16", context=32768, machine=m)
    assert small.layout.tensor_parallel == 1
    argv = launch_command(e).steps[-1].argv
    assert argv[argv.index("--tensor-parallel-size") + 1] == "8"


def test_multi_node_plan_with_ray() -> None:
    m = make_machine(80, 1024, gpus=8, bandwidth_gb_s=3350)
    e = estimate("397b-a17b", runtime="vllm", quant="bf16", context=32768, machine=m, nodes=2)
    assert e.layout.kind == "multi_node" and e.layout.pipeline_parallel == 2
    assert len(e.device_bytes) == 16 and check_fit(e, m).fits
    steps = launch_command(e).steps
    assert steps[0].argv[:3] == ["ray", "start", "--head"]
    assert "--pipeline-parallel-size" in steps[-1].argv


def test_check_requires_the_gpu_unless_offload_is_allowed() -> None:
    m = make_machine(16, 64)
    strict = check("35b-a3b", m, runtime="llama.cpp", quant="q4_k_m", context=32768)
    assert not strict.fits
    loose = check(
        "35b-a3b", m, runtime="llama.cpp", quant="q4_k_m", context=32768, allow_offload=True
    )
    assert loose.fits and loose.estimate.layout.kind == "offload"


def test_recommend_prefers_whole_gpu_and_offloads_only_when_needed_or_asked() -> None:
    m = make_machine(16, 128)
    plain = recommend(m, runtime="llama.cpp", limit=50)
    # unasked, only MoE experts go to RAM, and only at or above the speed floor
    for r in plain.recommendations:
        if r.placement == "offload":
            assert r.estimate.layout.cpu_moe_layers and r.meets_speed_floor, r.model
    opted = recommend(m, runtime="llama.cpp", allow_offload=True, limit=20)
    assert any(r.placement == "offload" for r in opted.recommendations)
    tiny = recommend(make_machine(1, 64), runtime="llama.cpp")  # 1 GiB: nothing fits whole
    assert tiny.recommendations and all(
        r.placement in ("offload", "cpu") for r in tiny.recommendations
    )
    assert any("RAM" in n for n in tiny.notes + tiny.warnings)


@settings(max_examples=300, deadline=None)
@given(
    lo=st.integers(0, 8),
    span=st.integers(0, 80),
    steps=st.lists(st.integers(0, 5 * GiB), min_size=81, max_size=81),
    start=st.integers(-GiB, 200 * GiB),
)
def test_smallest_finds_what_a_scan_finds(lo: int, span: int, steps: list[int], start: int) -> None:
    """The offload planners' search (interpolated first guess, then bisection) returns the
    smallest n whose bytes over budget are <= 0, for any non-increasing curve, and never
    looks outside [lo, hi]."""
    hi = lo + span
    seen: list[int] = []

    def over(n: int) -> int:
        assert lo <= n <= hi
        seen.append(n)
        return start - sum(steps[: n - lo])

    want = next((n for n in range(lo, hi + 1) if over(n) <= 0), None)
    seen.clear()
    assert smallest_within(lo, hi, over) == want


def test_smallest_needs_few_estimates_when_each_layer_frees_the_same() -> None:
    # 48 layers, each moving 1 GiB of experts off the GPU, 20.5 GiB too much at the start:
    # the answer (21) in 4 estimates where a bisection takes 7
    seen: list[int] = []

    def over(n: int) -> int:
        seen.append(n)
        return int(20.5 * GiB) - n * GiB

    assert smallest_within(1, 48, over) == 21
    assert len(seen) <= 4
