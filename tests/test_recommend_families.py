"""`--family all`: the newer same-architecture releases win where their cards' scores are higher
on the benchmarks both cards report, and only there; scores are never means over different
benchmark sets."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenfit.hardware.catalog import with_overrides
from qwenfit.recommender import policy
from qwenfit.recommender.ranking import recommend
from qwenfit.recommender.search import shared_benchmarks
from qwenfit.specs.table import ModelSpec, SpecTable

DATA = Path(__file__).parents[1] / "data" / "model_specs.json"
PAIR = ["qwen3.5-27b", "qwen3.6-27b"]


def _scores(raw: dict[str, Any], name: str) -> dict[str, float]:
    row = next(m for m in raw["models"] if m["name"] == name)
    return dict(row["quality"]["scores"]) if row.get("quality") else {}


def expected_winner(raw: dict[str, Any], names: list[str], task: str) -> str | None:
    """From the data alone: the model whose mean over the task's benchmarks that both report
    is higher; None when one of them reports none of the task's benchmarks (no comparable
    score: the one with scores is kept)."""
    listed = policy.TASK_BENCHMARKS[task]
    scores = {n: _scores(raw, n) for n in names}
    has = {n: [b for b in listed if b in s] for n, s in scores.items()}
    if not all(has.values()):
        return next((n for n in names if has[n]), None)
    common = [b for b in listed if all(b in s for s in scores.values())]
    means = {n: statistics.fmean(scores[n][b] for b in common) for n in names}
    return max(names, key=lambda n: means[n])


# Machines that hold both 27B releases with llama.cpp, where both have the same GGUF
# quantizations, so the same memory and speed: only the scores separate them. (With vLLM the
# Qwen3.5-27B also has a GPTQ-Int4 checkpoint, faster than either FP8 one, and a faster
# configuration wins a noise tie, the policy of `policy.rank`.)
BOTH_FIT = [
    ("RTX 4090", "64GB", "llama.cpp"),
    ("RTX 5090", "64GB", "llama.cpp"),
    ("H100", "256GB", "llama.cpp"),
    ("M4 Max", "64GB", "llama.cpp"),
]


@settings(max_examples=16, deadline=None)
@given(machine=st.sampled_from(BOTH_FIT), task=st.sampled_from(["chat", "agent", "code", "vision"]))
def test_the_newer_27b_wins_iff_its_card_scores_higher(
    machine: tuple[str, str, str], task: str
) -> None:
    raw = json.loads(DATA.read_text())
    m = with_overrides(None, gpu=machine[0], ram=machine[1])
    r = recommend(m, task=task, runtime=machine[2], models=list(PAIR), limit=20)  # type: ignore[arg-type]
    assert {p.model for p in r.recommendations} == set(PAIR)  # both fit
    assert r.recommendations[0].model == expected_winner(raw, PAIR, task)


def test_the_winner_follows_the_scores_not_the_release(table: SpecTable, tmp_path: Path) -> None:
    """Swap the two 27B rows' LiveCodeBench scores: the code pick swaps with them."""
    m = with_overrides(None, gpu="RTX 4090", ram="64GB")
    assert recommend(
        m, task="code", runtime="llama.cpp", models=list(PAIR), limit=1
    ).recommendations[0].model == ("qwen3.6-27b")
    a, b = (table.get(n) for n in PAIR)
    assert a.quality is not None and b.quality is not None
    sa, sb = dict(a.quality.scores), dict(b.quality.scores)
    sa["LiveCodeBench v6"], sb["LiveCodeBench v6"] = sb["LiveCodeBench v6"], sa["LiveCodeBench v6"]
    swapped = table.model_copy(
        update={
            "models": [
                a.model_copy(update={"quality": a.quality.model_copy(update={"scores": sa})}),
                b.model_copy(update={"quality": b.quality.model_copy(update={"scores": sb})}),
            ]
        }
    )
    got = recommend(m, task="code", runtime="llama.cpp", models=list(PAIR), limit=1, table=swapped)
    assert got.recommendations[0].model == "qwen3.5-27b"


def test_scores_are_means_over_the_benchmarks_every_card_reports(table: SpecTable) -> None:
    every = table.family_models("all")
    assert shared_benchmarks(every, "chat") == (
        "MMLU-Pro",
        "MMLU-Redux",
        "C-Eval",
        "SuperGPQA",
        "GPQA",
    )
    assert shared_benchmarks(every, "code") == ("LiveCodeBench v6",)
    assert shared_benchmarks(every, "vision") == ("MMMU", "MMStar")
    # the Qwen3.6 cards report no agent benchmark of the list: the Qwen3.5 rows keep theirs
    assert shared_benchmarks(every, "agent") == policy.TASK_BENCHMARKS["agent"]
    # one family: unchanged
    assert (
        shared_benchmarks(table.family_models("qwen3.5"), "chat") == policy.TASK_BENCHMARKS["chat"]
    )


def test_the_output_states_the_gap(table: SpecTable) -> None:
    m = with_overrides(None, gpu="RTX 4090", ram="64GB")
    chat = " ".join(recommend(m, family="all", limit=1, table=table).notes)
    assert "left out: IFEval, MMMLU, LongBench v2" in chat and "Qwen3.6-27B" in chat
    agent = " ".join(recommend(m, family="all", task="agent", limit=1, table=table).notes)
    assert "Qwen3.6-27B" in agent and "ranked after every model that has agent scores" in agent
    assert "Qwen3.8-27B" in agent  # no card table in the data


@pytest.mark.parametrize(
    ("gpu", "ram"),
    [("RTX 3060", "32GB"), ("RTX 4090", "64GB"), ("RTX 5090", "64GB"), ("H100", "256GB")],
)
def test_a_model_without_agent_scores_is_never_offered_as_better(
    table: SpecTable, gpu: str, ram: str
) -> None:
    r = recommend(with_overrides(None, gpu=gpu, ram=ram), family="all", task="agent", table=table)
    assert r.recommendations[0].model.startswith("qwen3.5-")
    assert "Qwen3.6" not in (r.why_not_bigger or "") and "Qwen3.8" not in (r.why_not_bigger or "")


@pytest.mark.parametrize("task", ["chat", "agent", "code", "vision"])
def test_family_all_picks_the_35b_release_whose_card_wins(table: SpecTable, task: str) -> None:
    # a 32 GB card holds both 35B-A3B releases at 4 bits: Qwen3.6 for chat and code
    # (LiveCodeBench 80.4 vs 74.6), Qwen3.5 for vision (MMStar 81.9 vs 80.7) and agents (the
    # Qwen3.6 card reports none of the agent benchmarks). Only the pair is ranked: the 27B at
    # Q8_0 (Q4_K_M costs 2.34 % on this family) now outscores both on chat at a shorter context
    raw = json.loads(DATA.read_text())
    m = with_overrides(None, gpu="RTX 5090", ram="64GB")
    pair: list[str | ModelSpec] = ["qwen3.5-35b-a3b", "qwen3.6-35b-a3b"]
    r = recommend(m, family="all", task=task, limit=1, models=pair, table=table)
    assert r.recommendations[0].model == expected_winner(raw, [str(n) for n in pair], task)


def test_only_models_the_runtime_loads_narrow_the_benchmarks(table: SpecTable) -> None:
    # no MLX checkpoint of the Qwen3.6 rows: on MLX the Qwen3.5 rows keep all eight chat benchmarks
    mac = with_overrides(None, gpu="M4 Max", ram="128GB")
    r = recommend(mac, family="all", runtime="mlx", limit=1, table=table)
    assert not any("left out" in n for n in r.notes)
    lcpp = recommend(mac, family="all", runtime="llama.cpp", limit=1, table=table)
    assert any("left out" in n for n in lcpp.notes)
