"""The recommender: sensible picks, determinism, and the invariants users rely on."""

from __future__ import annotations

import pytest
from conftest import make_machine
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qwenfit import estimate
from qwenfit.fit.preflight import check
from qwenfit.fit.verdict import check_fit
from qwenfit.recommender.ranking import RecommendResult, recommend
from qwenfit.specs.table import SpecTable


def test_a_24gb_card_gets_the_27b_at_4_to_5_bits(table: SpecTable) -> None:
    # slow RAM (30 GB/s): the 122B-A10B with experts in RAM would run below the floor
    r = recommend(make_machine(24, 64, ram_gb_s=30), runtime="llama.cpp", table=table)
    best = r.recommendations[0]
    # 27B and 35B-A3B share a size tier: within the noise the faster one wins
    assert best.model in ("qwen3.5-27b", "qwen3.5-35b-a3b") and best.placement == "gpu"
    assert best.max_context is not None and best.max_context >= best.context
    assert best.launch.steps[0].argv[0] == "llama-server"


def test_expert_offload_is_searched_by_default_when_it_keeps_the_floor(table: SpecTable) -> None:
    fast = recommend(make_machine(24, 64, ram_gb_s=90), runtime="llama.cpp", table=table)
    best = fast.recommendations[0]
    assert best.model == "qwen3.5-122b-a10b" and best.placement == "offload"
    assert best.estimate.layout.cpu_moe_layers and best.meets_speed_floor
    assert "--n-cpu-moe" in best.command
    slow = recommend(make_machine(24, 64, ram_gb_s=30), runtime="llama.cpp", limit=50, table=table)
    assert slow.recommendations[0].model != "qwen3.5-122b-a10b"
    assert slow.why_not_bigger and "122B" in slow.why_not_bigger


def test_larger_model_at_q4_beats_smaller_at_q8(table: SpecTable) -> None:
    picks = recommend(make_machine(24, 64), runtime="llama.cpp", limit=50, table=table)
    order = [(p.model, p.quant) for p in picks.recommendations]
    assert order.index(("qwen3.5-27b", "q4_k_m")) < order.index(("qwen3.5-9b", "q8_0"))


def test_datacenter_gpu_with_vllm_installed_defaults_to_vllm(table: SpecTable) -> None:
    r = recommend(make_machine(80, 256, runtimes={"vllm": "0.17.0"}), table=table)
    assert r.runtime == "vllm"
    assert r.recommendations[0].launch.steps[0].argv[:2] == ["vllm", "serve"]


def test_nothing_fits_gives_an_empty_list(table: SpecTable) -> None:
    r = recommend(make_machine(None, 0.5), runtime="llama.cpp", table=table)
    assert r.recommendations == []


def test_vision_task_refuses_text_only(table: SpecTable) -> None:
    with pytest.raises(ValueError, match="vision"):
        recommend(make_machine(24), task="vision", text_only=True, table=table)


def test_min_speed_filters_slow_picks(table: SpecTable) -> None:
    r = recommend(
        make_machine(24, 64, bandwidth_gb_s=1000), runtime="llama.cpp", min_speed=60, table=table
    )
    assert r.recommendations
    assert all((x.tokens_per_second or 0) >= 60 for x in r.recommendations)


def test_same_input_same_output(table: SpecTable) -> None:
    m = make_machine(16, 32)
    a = recommend(m, runtime="llama.cpp", table=table).model_dump()
    b = recommend(m, runtime="llama.cpp", table=table).model_dump()
    assert a == b


def test_check_reports_the_nearest_fit(table: SpecTable) -> None:
    result = check(
        "27b", make_machine(16, 32), runtime="llama.cpp", quant="q4_k_m", context=32768, table=table
    )
    assert not result.fits and result.fit.missing_bytes > 0
    assert result.nearest is not None
    assert check_fit(
        estimate(
            result.nearest.model,
            runtime="llama.cpp",
            quant=result.nearest.quant,
            context=result.nearest.context,
            machine=make_machine(16, 32),
            table=table,
        ),
        make_machine(16, 32),
    ).fits


MACHINES = st.builds(
    lambda vram, ram: (vram, ram),
    st.one_of(st.none(), st.integers(2, 200)),
    st.integers(1, 512),
)
TIER = {"gpu": 0, "multi_gpu": 0, "multi_node": 0, "offload": 1, "cpu": 1}


def _merit(r: RecommendResult) -> tuple[bool, int]:
    """What 'better' means beyond quality: reaching the speed floor, then the whole model on
    GPUs rather than RAM offload."""
    best = r.recommendations[0]
    # MoE experts in RAM at or above the floor are searched by default: as good as whole
    experts = bool(best.estimate.layout.cpu_moe_layers) and best.meets_speed_floor
    return (best.meets_speed_floor, 0 if experts else -TIER[best.placement])


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(
    machine=MACHINES,
    more=st.integers(1, 100),
    runtime=st.sampled_from(["llama.cpp", "ollama", "vllm"]),
)
def test_more_memory_never_gives_a_worse_pick(
    machine: tuple[int | None, int], more: int, runtime: str
) -> None:
    """More memory never loses the floor or the GPU, and never costs quality beyond the
    benchmarks' noise (within a tie the faster pick may score a little less)."""
    vram, ram = machine
    assume(not (runtime == "vllm" and vram is None))  # a usage error (test_odd_machines.py)
    small = recommend(make_machine(vram, ram), runtime=runtime, limit=1)
    big = recommend(
        make_machine(None if vram is None else vram + more, ram + more), runtime=runtime, limit=1
    )
    if small.recommendations:
        assert big.recommendations
        assert _merit(big) >= _merit(small)
        if _merit(big) == _merit(small):
            a, b = small.recommendations[0], big.recommendations[0]
            assert b.quality_score >= a.quality_score - small.tie_threshold


@pytest.mark.slow
@settings(max_examples=20, deadline=None)
@given(
    machine=MACHINES,
    runtime=st.sampled_from(["llama.cpp", "ollama", "vllm"]),
    floor=st.sampled_from([None, 5.0, 30.0]),
)
def test_the_floor_holds_unless_nothing_faster_fits(
    machine: tuple[int | None, int], runtime: str, floor: float | None
) -> None:
    assume(not (runtime == "vllm" and machine[0] is None))  # a usage error (test_odd_machines)
    r = recommend(make_machine(*machine), runtime=runtime, min_speed=floor, limit=1000)
    if not r.recommendations:
        return
    best = r.recommendations[0]
    if not best.meets_speed_floor:
        assert not any(x.meets_speed_floor for x in r.recommendations)
        speeds = [x.tokens_per_second for x in r.recommendations if x.tokens_per_second]
        assert best.tokens_per_second is None or best.tokens_per_second == max(speeds)
    assert all(
        x.tokens_per_second is not None or not x.meets_speed_floor for x in r.recommendations
    )


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(machine=MACHINES, runtime=st.sampled_from(["llama.cpp", "ollama", "vllm", "transformers"]))
def test_every_recommendation_fits(machine: tuple[int | None, int], runtime: str) -> None:
    assume(not (runtime == "vllm" and machine[0] is None))  # a usage error (test_odd_machines)
    m = make_machine(*machine)
    for rec in recommend(m, runtime=runtime, limit=10).recommendations:
        assert check_fit(rec.estimate, m).fits


def test_cpu_only_pick_is_fast_enough_to_read() -> None:
    """A 2-core box with 22 GiB of RAM: big models fit but would crawl; the pick must not."""
    m = make_machine(None, 22, ram_gb_s=39)
    r = recommend(m, runtime="llama.cpp")
    best = r.recommendations[0]
    assert best.placement == "cpu" and best.tokens_per_second is not None
    everything = recommend(m, runtime="llama.cpp", min_speed=0, limit=50)
    # bigger models fit, and were left out for speed (totals compare equal once llama-server's
    # checkpoints and prompt cache are bounded to the RAM left, so compare the weights)
    assert (
        max(x.estimate.weights_bytes for x in everything.recommendations)
        > best.estimate.weights_bytes
    )
    assert best.tokens_per_second >= r.min_speed == 10
    assert r.why_not_bigger is None or "floor" in r.why_not_bigger or "more" in r.why_not_bigger


def test_bf16_and_8_bit_of_one_model_are_a_tie_won_by_speed(table: SpecTable) -> None:
    """27B on an H100 with vLLM: BF16 is 0.04 % better than FP8, FP8 is much faster."""
    from qwenfit.hardware.catalog import with_overrides

    m = with_overrides(None, gpu="H100", ram="256GB")
    r = recommend(m, runtime="vllm", models=["27b"], limit=10, table=table)
    assert r.recommendations[0].quant != "bf16"
    assert r.tie_threshold > 1


def test_ties_follow_the_benchmark_noise() -> None:
    from qwenfit.recommender import policy

    # Miller 2024: SE = sqrt(p(1-p)/n); the chat mean over 8 benchmarks is tight, code's one
    # benchmark (no stated size, counted as GPQA Diamond's 198) is loose.
    assert 1 < policy.tie_threshold("chat") < 2.5
    assert (
        policy.tie_threshold("code") > policy.tie_threshold("agent") > policy.tie_threshold("chat")
    )


def test_unknown_speed_never_reaches_the_floor(table: SpecTable) -> None:
    r = recommend(make_machine(24, 64, bandwidth_gb_s=None), runtime="llama.cpp", table=table)
    assert r.recommendations and all(not x.meets_speed_floor for x in r.recommendations)
    assert all(x.speed_source == "unknown" for x in r.recommendations)
    assert any("speed unknown" in w for w in r.warnings)


def test_a_quantized_kv_cache_and_no_vision_tower_fit_a_better_model(table: SpecTable) -> None:
    """RTX 4090 at 128k: the 27B fits with a q8_0 KV cache, and the pick says what it gave up."""
    from qwenfit.hardware.catalog import with_overrides

    m = with_overrides(None, gpu="RTX 4090", ram="64GB")
    r = recommend(m, runtime="llama.cpp", context=131072, limit=20, table=table)
    best = r.recommendations[0]
    assert best.model != "qwen3.5-9b"
    assert any(x.kv_cache != "f16" and x.gave_up for x in r.recommendations)
    assert any(x.model == "qwen3.5-27b" for x in r.recommendations)


def test_the_thinking_context_is_the_default(table: SpecTable) -> None:
    r = recommend(make_machine(24, 64), runtime="llama.cpp", table=table)
    # searched at the card's 32,768 output tokens; each pick then gets up to the 128K the
    # cards advise for thinking where its memory holds it
    assert r.context == 32768 and r.recommendations[0].context >= 32768
    assert any("thinking" in n for n in r.notes)


def test_apple_never_gets_vllm(table: SpecTable) -> None:
    from qwenfit.errors import UsageError
    from qwenfit.hardware.catalog import with_overrides
    from qwenfit.memory.estimator import estimate as run_estimate

    mac = with_overrides(None, gpu="M2 Ultra", ram="192GB")
    assert recommend(mac, table=table).runtime != "vllm"
    with pytest.raises(UsageError, match="Apple"):
        recommend(mac, runtime="vllm", table=table)
    with pytest.raises(UsageError, match="Apple"):
        run_estimate("9b", runtime="vllm", machine=mac, table=table)


@pytest.mark.parametrize(
    ("gpu", "runtime"),
    [
        ("H100", "vllm"),
        ("8x H100", "vllm"),
        ("MI300X", "vllm"),
        ("4x RTX 3090", "vllm"),
        ("RTX 4090", "ollama"),
        ("2x RTX 4090", "ollama"),
        ("RX 7900 XTX", "ollama"),
        ("M4 Max", "mlx"),
    ],
)
def test_the_runtime_follows_the_hardware(gpu: str, runtime: str) -> None:
    from qwenfit.hardware.catalog import with_overrides
    from qwenfit.memory.runtimes import default_runtime

    assert default_runtime(with_overrides(None, gpu=gpu, ram="128GB")) == runtime


def test_what_is_installed_wins() -> None:
    from qwenfit.hardware.catalog import with_overrides
    from qwenfit.memory.runtimes import default_runtime

    h100 = with_overrides(None, gpu="H100", ram="256GB").model_copy(
        update={"runtimes": {"llama.cpp": None}}
    )
    assert default_runtime(h100) == "llama.cpp"
    mac = with_overrides(None, gpu="M4 Max", ram="64GB")
    assert default_runtime(mac.model_copy(update={"runtimes": {"vllm": "0.17.0"}})) == "mlx"
    assert default_runtime(mac.model_copy(update={"runtimes": {"ollama": None}})) == "ollama"
    assert default_runtime(mac.model_copy(update={"runtimes": {"mlx": "0.32.2"}})) == "mlx"


def test_a_gpu_without_ram_is_refused_naming_ram() -> None:
    from qwenfit.errors import UsageError
    from qwenfit.hardware.catalog import with_overrides

    with pytest.raises(UsageError, match="ram"):
        with_overrides(None, gpu="RTX 4090")


def test_vllm_plans_hold_their_max_num_seqs(table: SpecTable) -> None:
    from qwenfit.hardware.catalog import with_overrides

    m = with_overrides(None, gpu="H100", ram="256GB")
    one = recommend(m, runtime="vllm", limit=1, table=table).recommendations[0]
    many = recommend(m, runtime="vllm", parallel=16, limit=1, table=table).recommendations[0]
    assert one.max_num_seqs is not None and one.max_num_seqs >= 1
    assert many.aggregate_tokens_per_second is not None and many.tokens_per_second is not None
    assert many.aggregate_tokens_per_second == pytest.approx(
        many.tokens_per_second * min(16, many.max_num_seqs or 16), rel=0.01
    )


def test_fp8_on_ampere_is_flagged_weight_only(table: SpecTable) -> None:
    from qwenfit.hardware.catalog import with_overrides

    m = with_overrides(None, gpu="A100 80GB", ram="256GB")
    r = recommend(m, runtime="vllm", limit=20, table=table)
    fp8 = [x for x in r.recommendations if x.quant == "fp8"]
    assert fp8 and all(any("weight-only" in w for w in x.warnings) for x in fp8)
    h = recommend(
        with_overrides(None, gpu="H100", ram="256GB"), runtime="vllm", limit=20, table=table
    )
    assert not any("weight-only" in w for x in h.recommendations for w in x.warnings)


def test_a_slow_bigger_model_is_named_in_why_not_bigger(table: SpecTable) -> None:
    m = make_machine(None, 16, ram_gb_s=51)
    r = recommend(m, runtime="llama.cpp", table=table)
    assert r.recommendations[0].meets_speed_floor
    assert r.why_not_bigger and "floor" in r.why_not_bigger
