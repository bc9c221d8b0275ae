"""The ranking policy: what counts as better, and every threshold with where it comes from.

`docs/recommending.md` states the same rules for people. In order:

1. Picks that reach the task's usable-speed floor come first (unknown speed never does).
2. Among those, expected quality: the model card's task scores, reduced by the measured loss of
   the weight precision and of the KV cache type. Scores closer than the benchmarks' own noise
   (`tie_threshold`) are ties.
3. Ties are broken by speed (aggregate throughput first when serving several users), then by
   memory headroom, then by name.
4. Below the floor, the fastest pick comes first: it is shown only because nothing faster fits.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from qwenfit.datafiles import data_text

TASK_BENCHMARKS: dict[str, tuple[str, ...]] = {
    "chat": (
        "MMLU-Pro",
        "MMLU-Redux",
        "C-Eval",
        "SuperGPQA",
        "GPQA",
        "IFEval",
        "MMMLU",
        "LongBench v2",
    ),
    "agent": ("BFCL-V4", "TAU2-Bench", "IFEval"),
    "code": ("LiveCodeBench v6",),
    "vision": ("MMMU", "MMStar"),
}

# Qwen3.5 thinks by default in every task, and its model card asks for "an output length of
# 32,768 tokens for most queries" (https://huggingface.co/Qwen/Qwen3.5-27B, Best Practices):
# without --context, every task aims for at least that much.
THINKING_CONTEXT = 32768
TASK_CONTEXT: dict[str, int] = {t: THINKING_CONTEXT for t in TASK_BENCHMARKS}

# Usable-speed floor, decode tokens/s of one sequence. Silent reading averages 238 words per
# minute (Brysbaert 2019, J. Memory and Language 109:104047, doi:10.1016/j.jml.2019.104047),
# ~5.3 tokens/s at 1.33 tokens per word. A thinking model writes its reasoning before the answer
# and nobody reads it: 2,000 tokens of thinking take 3.3 minutes at 10 tokens/s and 6.7 at 5.
# Twice reading speed is a product choice derived from these figures, not a published standard.
SPEED_FLOOR: dict[str, float] = {t: 10.0 for t in TASK_BENCHMARKS}

# RAM bandwidth assumed when a CPU or offloaded pick needs one and the machine record has none
# (RAM bandwidth is not probed): dual-channel DDR4-3200, 2 channels x 8 bytes x 3200 MT/s
# (JEDEC JESD79-4 data rate) = 51.2 GB/s, a common laptop and desktop figure. Labelled
# "assumed" wherever it is used; --ram-bandwidth replaces it.
ASSUMED_RAM_BANDWIDTH = 2 * 8 * 3200 * 10**6


@functools.cache
def _kv_table() -> dict[str, float]:
    raw = json.loads(data_text("kv_quality.json"))
    return {k: float(v["quality_loss"]) for k, v in raw["kv_cache"].items()}


def kv_quality_loss(kv_cache: str) -> float:
    """Measured (or conservatively proxied) quality cost of a KV cache type."""
    return _kv_table().get(kv_cache, 0.0)


@functools.cache
def _benchmark_sizes() -> dict[str, int]:
    raw = json.loads(data_text("benchmark_noise.json"))
    return {k: int(v["n"]) for k, v in raw["benchmarks"].items()}


@functools.cache
def tie_threshold(task: str) -> float:
    """Score points (0-100 scale) below which two task scores are a tie.

    Miller 2024 (arXiv:2411.00640): SE of a score on n independent questions is sqrt(p(1-p)/n);
    at p = 0.5, averaged over the task's k benchmarks, SE = sqrt(sum 0.25/n_i) / k. Two
    independent scores differ beyond noise when |d| > 1.96 x sqrt(2) x SE.
    """
    sizes = _benchmark_sizes()
    smallest = min(sizes.values())
    names = TASK_BENCHMARKS[task]
    var = sum(0.25 / sizes.get(b, smallest) for b in names) / len(names) ** 2
    return round(100 * 1.96 * math.sqrt(2) * math.sqrt(var), 2)


Variant = tuple[str, bool]  # (kv cache type, text only)


def variants(
    task: str,
    kv_types: Sequence[str],
    kv_user: str | None,
    text_only: bool,
    drops_vision: bool = True,
) -> list[Variant]:
    """KV cache x vision variants of one model x precision, in the order they are tried: the
    first that fits is kept. `chat` keeps the vision tower before quantizing the KV cache below
    q8_0 (images are part of chat); `agent` and `code` drop it first; `vision` never does, nor
    a runtime that cannot serve text only (its adapter's `drops_vision`: an Ollama tag carries
    its tower)."""
    kvs = [kv_user] if kv_user else list(kv_types)
    if text_only:
        towers = [True]
    elif task == "vision" or not drops_vision:
        towers = [False]
    else:
        towers = [False, True]
    out = [(kv, t) for kv in kvs for t in towers]
    if task == "chat":
        out.sort(key=lambda v: (kv_quality_loss(v[0]) > 0.01, v[1], kv_quality_loss(v[0])))
    else:
        out.sort(key=lambda v: (kv_quality_loss(v[0]), v[1]))
    return out


C = TypeVar("C")


def rank(
    items: list[C],
    *,
    quality: Callable[[C], float],
    speed: Callable[[C], float | None],
    tiebreak: Callable[[C], tuple[object, ...]],
    floor: float,
    threshold: float,
) -> list[C]:
    """Order `items` by the policy of this module.

    `tiebreak(c)` orders candidates within one quality tie (smaller first: negative aggregate
    throughput, negative speed, negative headroom, name). Tie groups are formed greedily: the
    best remaining score and everything within `threshold` of it.
    """
    fast: list[C] = []
    slow: list[C] = []
    for c in items:
        s = speed(c)
        (fast if s is not None and s >= floor else slow).append(c)
    ordered: list[C] = []
    rest = sorted(fast, key=lambda c: (-quality(c), tiebreak(c)))
    while rest:
        top = quality(rest[0])
        group = [c for c in rest if top - quality(c) < threshold]
        ordered += sorted(group, key=tiebreak)
        rest = [c for c in rest if top - quality(c) >= threshold]
    ordered += sorted(
        slow,
        key=lambda c: (speed(c) is None, -(speed(c) or 0.0), -quality(c), tiebreak(c)),
    )
    return ordered
