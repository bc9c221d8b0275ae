"""Decode with a fixed cost per layer, prefill and TTFT, several sequences, per-runtime factors
(issue 18), and the real-world set's memory figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from realworld import validate

from qwenfit import estimate, with_overrides
from qwenfit.memory import speed
from qwenfit.specs.table import SpecTable

REPO = Path(__file__).resolve().parents[1]


def _gpu(name: str = "RTX 4090") -> Any:
    return with_overrides(None, gpu=name, ram="64GB")


def test_every_calibration_point_is_cited_and_fitted(table: SpecTable) -> None:
    points = speed.measurements().measurements
    assert all(p.source for p in points)
    assert {p.kind for p in points} == {"decode", "prefill"}
    c = speed.calibration(table)
    assert 0 < c.decode[("gpu", True)] < c.decode[("gpu", False)] <= 1.2
    assert c.per_layer_s["gpu"] > 0 and c.prefill[("gpu", False)] > 0


def test_small_models_on_fast_cards_are_held_back_by_the_fixed_cost(table: SpecTable) -> None:
    """Without the per-layer cost 0.8B Q4_K_M on an H100 would be bandwidth / bytes, several
    thousand tokens/s; with it, it stays below the 1/(layers x cost) ceiling."""
    e = estimate("0.8b", runtime="llama.cpp", quant="q4_k_m", context=4096, text_only=True,
                 machine=_gpu("H100"))
    c = speed.calibration(table)
    ceiling = 1 / (c.per_layer_s["gpu"] * table.get("qwen3.5-0.8b").architecture.num_hidden_layers)
    assert e.tokens_per_second is not None and e.tokens_per_second < ceiling
    bandwidth_only = c.decode[("gpu", False)] * 3.35e12 / sum(speed.read_bytes(e).values())
    assert e.tokens_per_second < bandwidth_only / 3


def test_prefill_and_ttft_on_a_gpu_with_known_flops() -> None:
    e = estimate("27b", runtime="llama.cpp", quant="q4_k_m", context=32768, text_only=True,
                 machine=_gpu())
    assert e.prefill_tokens_per_second and e.time_to_first_token_s
    assert e.ttft_prompt_tokens == 32768
    # the attention term makes a long prompt slower per token than pp512
    assert e.time_to_first_token_s > 32768 / e.prefill_tokens_per_second


def test_no_prefill_where_the_throughput_is_unknown() -> None:
    cpu = with_overrides(None, vram=0, ram="64GB", ram_bandwidth="50GB/s")
    e = estimate("4b", runtime="llama.cpp", quant="q4_k_m", context=4096, text_only=True,
                 machine=cpu)
    assert e.tokens_per_second and e.prefill_tokens_per_second is None
    assert e.time_to_first_token_s is None and e.ttft_prompt_tokens is None
    apple = with_overrides(None, gpu="M3 Max", ram="64GB")
    e = estimate("9b", runtime="llama.cpp", quant="q4_k_m", context=4096, text_only=True,
                 machine=apple)
    assert e.tokens_per_second and e.prefill_tokens_per_second is None


@pytest.mark.parametrize("model", ["9b", "35b-a3b"])
def test_several_sequences_share_the_weight_reads(model: str) -> None:
    one = estimate(model, runtime="llama.cpp", quant="q4_k_m", context=4096, text_only=True,
                   machine=_gpu())
    four = estimate(model, runtime="llama.cpp", quant="q4_k_m", context=4096, parallel=4,
                    text_only=True, machine=_gpu())
    assert one.aggregate_tokens_per_second is None
    assert four.aggregate_tokens_per_second is not None and four.tokens_per_second is not None
    assert four.tokens_per_second < four.aggregate_tokens_per_second < 4 * four.tokens_per_second


def test_runtime_factor_comes_only_from_that_runtimes_points(table: SpecTable) -> None:
    c = speed.calibration(table)
    assert set(c.runtime) <= {p.runtime for p in speed.measurements().measurements}
    assert "llama.cpp" not in c.runtime


def test_leave_one_out_changes_the_fit(table: SpecTable) -> None:
    full = speed.measurements()
    before = speed.calibration(table).decode[("gpu", True)]
    rest = [m for m in full.measurements if m.model != "qwen3.5-35b-a3b"]
    with speed.calibrated_on(full.model_copy(update={"measurements": rest})):
        assert speed.calibration(table).decode[("gpu", True)] != before
    assert speed.calibration(table).decode[("gpu", True)] == before


def test_human_output_names_both_speeds() -> None:
    from qwenfit.cli.render import speed_line

    e = estimate("27b", runtime="llama.cpp", quant="q4_k_m", context=32768, parallel=2,
                 text_only=True, machine=_gpu())
    line = speed_line(e)
    assert "tokens/s decode" in line and "tokens/s prefill" in line
    assert "TTFT" in line and "32768-token prompt" in line and "over 2 sequences" in line


REALWORLD = [validate.compare(r) for r in validate.records()
             if any(k in r["measured"] for k in ("kv_bytes", "rs_bytes", "compute_bytes"))]


@pytest.mark.parametrize("row", REALWORLD, ids=lambda r: r["id"])
def test_published_llamacpp_buffers(row: dict[str, Any]) -> None:
    """Published KV and recurrent-state buffers within 1 % (they are exact); llama-server's
    compute buffer on ROCm / Vulkan / Metal within 10 %."""
    v = row["values"]
    for q in ("kv", "state", "host_weights"):
        if q in v:
            assert abs(v[q]["error"]) <= 1, q
    record = next(r for r in validate.records() if r["id"] == row["id"])
    if "compute" in v and record["measured"].get("reservation") == "server":
        assert abs(v["compute"]["error"]) <= 10
    if "compute" in v:
        assert v["compute"]["error"] >= -1  # never under
