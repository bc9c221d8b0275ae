"""The ranking policy: what counts as better, and every threshold with where it comes from.

`docs/recommending.md` states the same rules for people. In order:

1. Picks that reach the task's usable-speed floor come first (unknown speed never does).
2. Among those, expected quality: the model card's task scores, reduced by the measured loss of
   the weight precision and of the KV cache type (`quality`).
3. The tier rule: a model of a larger size tier, at 4 bits or more with a KV cache no worse
   than q8_0, comes before a smaller one whenever its card score is higher. Scores closer than
   the benchmarks' own noise (`tie_threshold`) are ties only within one tier.
   `prefer="speed"` (or a user --min-speed) goes back to noise ties across tiers.
4. Ties are broken by speed (aggregate throughput first when serving several users), then by
   memory headroom, then by name.
5. Below the floor, the fastest pick comes first: it is shown only because nothing faster fits.
"""

from __future__ import annotations

import functools
import heapq
import json
import math
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

from qwenfit.datafiles import data_text
from qwenfit.hardware.machine import GPU, Machine
from qwenfit.recommender import quality
from qwenfit.specs.table import ModelSpec

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
# no default context is below that.
THINKING_CONTEXT = 32768
TASK_CONTEXT: dict[str, int] = {t: THINKING_CONTEXT for t in TASK_BENCHMARKS}

# The context a pick gets when its memory allows (`context_goal`): the Qwen3.5 / 3.6 cards
# advise keeping at least 128K tokens of context to preserve thinking
# (https://huggingface.co/Qwen/Qwen3.5-397B-A17B, https://huggingface.co/Qwen/Qwen3.6-27B,
# Best Practices); Ollama asks at least 64,000 tokens for agents and coding tools
# (https://github.com/ollama/ollama/blob/main/docs/context-length.mdx).
CARD_CONTEXT = 131072
TOOL_CONTEXT: dict[str, int] = {"agent": 65536, "code": 65536}


def context_goal(task: str, fits_up_to: int | None, native: int) -> int:
    """The default context of a pick that fits `fits_up_to` tokens at most (None: unknown):
    128K when it fits, else the largest that fits above 32K; never above the model's own
    limit, never below the thinking minimum (the search already placed it there)."""
    top = min(fits_up_to or THINKING_CONTEXT, native)
    if top >= CARD_CONTEXT:
        return CARD_CONTEXT
    return max(THINKING_CONTEXT, top // 1024 * 1024)


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


def kv_quality_loss(kv_cache: str) -> float:
    """Measured (or conservatively proxied) quality cost of a KV cache type (an unknown type is
    an error: `quality.kv_loss`)."""
    return quality.kv_loss(kv_cache)


@functools.cache
def _benchmark_sizes() -> dict[str, int]:
    raw = json.loads(data_text("benchmark_noise.json"))
    return {k: int(v["n"]) for k, v in raw["benchmarks"].items()}


@functools.cache
def tie_threshold(task: str, names: tuple[str, ...] = ()) -> float:
    """Score points (0-100 scale) below which two task scores are a tie, for scores averaged
    over `names` (default: the task's benchmarks).

    Miller 2024 (arXiv:2411.00640): SE of a score on n independent questions is sqrt(p(1-p)/n);
    at p = 0.5, averaged over the task's k benchmarks, SE = sqrt(sum 0.25/n_i) / k. Two
    independent scores differ beyond noise when |d| > 1.96 x sqrt(2) x SE.
    """
    sizes = _benchmark_sizes()
    smallest = min(sizes.values())
    names = names or TASK_BENCHMARKS[task]
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


# Size tiers by total parameters (billions): each bound about doubles the one before, so a
# tier up is a model with several times the parameters. 27B and 35B-A3B share one tier (the
# same memory class); 122B-A10B and 397B-A17B are the two above it. A product choice.
TIER_BOUNDS_B = (1.5, 3.0, 6.0, 15.0, 60.0, 200.0)


def tier(spec: ModelSpec) -> int:
    """0 for the smallest models; one more per bound of `TIER_BOUNDS_B` passed."""
    billions = spec.params.total / 1e9
    return sum(billions >= b for b in TIER_BOUNDS_B)


def strong_enough(quant: str, kv_cache: str) -> bool:
    """May a larger tier win on its card score: weights of 4 bits or more and a KV cache that
    costs no more than q8_0."""
    return quality.precision_bits(quant) >= 4 and kv_quality_loss(kv_cache) <= kv_quality_loss(
        "q8_0"
    )


def _cc(gpu: GPU) -> float:
    try:
        return float(gpu.compute_capability or "nan")
    except ValueError:
        return math.nan


def fp8_hardware(machine: Machine) -> bool:
    """Every GPU has FP8 units: NVIDIA compute capability 8.9 or more (Ada, Hopper,
    Blackwell), AMD CDNA 3 or later (MI300 series and up). There the vLLM recipe serves the
    official FP8 checkpoint (https://github.com/vllm-project/recipes, Qwen/Qwen3.5.md)."""
    return bool(machine.gpus) and all(
        (g.vendor == "nvidia" and _cc(g) >= 8.9)
        or (g.vendor == "amd" and (g.architecture or "").startswith(("CDNA 3", "CDNA 4")))
        for g in machine.gpus
    )


def lacks_bf16(machine: Machine) -> bool:
    """An NVIDIA GPU below compute capability 8.0 (T4, V100): vLLM refuses BF16 there unless
    told --dtype half (FP16 compute of the BF16 weights)."""
    return any(g.vendor == "nvidia" and _cc(g) < 8.0 for g in machine.gpus)


Prefer = Literal["quality", "speed"]

# Two precisions of one model share one card score, so the benchmarks' noise cannot tie them:
# they differ only by the measured cost of the precision. They tie (and the faster wins) when
# those costs differ by less than one score point, the resolution of the finest measurement
# the loss table holds for this family (0.8 points on Unsloth's 750-prompt suite, whose own
# standard error is about 1.8 points). A product choice, stated in docs/recommending.md.
PRECISION_TIE = 1.0

C = TypeVar("C")


def rank(
    items: list[C],
    *,
    quality: Callable[[C], float],
    speed: Callable[[C], float | None],
    tiebreak: Callable[[C], tuple[object, ...]],
    floor: float,
    threshold: float,
    tier: Callable[[C], int] | None = None,
    card: Callable[[C], float] | None = None,
    strong: Callable[[C], bool] | None = None,
    model: Callable[[C], str] | None = None,
    prefer: Prefer = "quality",
    comparable: Callable[[C], bool] | None = None,
    release: Callable[[C], object] | None = None,
) -> list[C]:
    """Order `items` by the policy of this module.

    `tiebreak(c)` orders candidates within one quality tie (smaller first: negative aggregate
    throughput, negative speed, negative headroom, name). Tie groups are formed greedily: the
    best remaining score and everything within `threshold` of it, of the same `tier` unless
    `prefer` is "speed". With `tier`, `card` and `strong` the tier rule then moves every
    strong larger-tier candidate with the higher card score ahead of the smaller one; with
    `model`, a precision of a model that scores `PRECISION_TIE` or more above another of the
    same model goes ahead of it; with `release` (a key equal for releases of one architecture
    at one precision), the release that scores higher goes ahead. With `comparable`, candidates
    it rejects (no score on the task's benchmarks) follow every fast one it accepts, ranked the
    same way among themselves.
    """

    def slow_key(c: C) -> tuple[object, ...]:
        return (speed(c) is None, -(speed(c) or 0.0), -quality(c), tiebreak(c))

    def is_fast(c: C) -> bool:
        s = speed(c)
        return s is not None and s >= floor

    if comparable is not None and 0 < sum(map(comparable, items)) < len(items):
        parts = [
            rank(
                [c for c in items if comparable(c) == want],
                quality=quality,
                speed=speed,
                tiebreak=tiebreak,
                floor=floor,
                threshold=threshold,
                tier=tier,
                card=card,
                strong=strong,
                model=model,
                prefer=prefer,
                release=release,
            )
            for want in (True, False)
        ]
        fast_first = [c for part in parts for c in part if is_fast(c)]
        return fast_first + sorted((c for p in parts for c in p if not is_fast(c)), key=slow_key)
    fast: list[C] = []
    slow: list[C] = []
    for c in items:
        s = speed(c)
        (fast if s is not None and s >= floor else slow).append(c)
    by_tier = tier is not None and prefer == "quality"
    ordered: list[C] = []
    rest = sorted(fast, key=lambda c: (-quality(c), tiebreak(c)))
    while rest:
        top = rest[0]
        tied = [
            c
            for c in rest
            if quality(top) - quality(c) < threshold and (not by_tier or tier(c) == tier(top))  # type: ignore[misc]
        ]
        ordered += sorted(tied, key=tiebreak)
        rest = [c for c in rest if not any(c is t for t in tied)]
    rules = _rules(ordered, quality, tier, card, strong, model, release, by_tier)
    ordered = _ahead(ordered, rules)
    return ordered + sorted(slow, key=slow_key)


Rule = Callable[[int, int], bool]


def _rules(
    ordered: list[C],
    quality: Callable[[C], float],
    tier: Callable[[C], int] | None,
    card: Callable[[C], float] | None,
    strong: Callable[[C], bool] | None,
    model: Callable[[C], str] | None,
    release: Callable[[C], object] | None,
    by_tier: bool,
) -> list[Rule]:
    """Which of `ordered` (by index) must go ahead of which.

    - The tier rule: a is strong, of a larger tier and has the higher card score (an edge to a
      smaller tier).
    - The precision rule: the same model, `PRECISION_TIE` points or more better.
    - The release rule (with the tier rule): two releases of one architecture at one
      precision (Qwen3.5-27B and Qwen3.6-27B at Q4_K_M) have the same bytes and speed model,
      so their few-tenths-of-a-percent file size differences are no reason to pick the
      lower-scoring one inside a noise tie: the higher score goes ahead.
    The last two keep the tier and lower the score, so together they cannot form a cycle.
    Each key is computed once: the pairs are n^2."""
    rules: list[Rule] = []
    if by_tier and tier is not None and card is not None and strong is not None:
        tiers = [tier(x) for x in ordered]
        cards = [card(x) for x in ordered]
        strongs = [strong(x) for x in ordered]
        rules.append(lambda a, b: tiers[a] > tiers[b] and strongs[a] and cards[a] > cards[b])
    if model is None:
        return rules
    models = [model(x) for x in ordered]
    scores = [quality(x) for x in ordered]
    rules.append(lambda a, b: models[a] == models[b] and scores[a] - scores[b] >= PRECISION_TIE)
    if by_tier and release is not None:
        keys = [release(x) for x in ordered]
        rules.append(
            lambda a, b: keys[a] == keys[b] and models[a] != models[b] and scores[a] > scores[b]
        )
    return rules


def _ahead(ordered: list[C], rules: list[Rule]) -> list[C]:
    """`ordered`, with every a ahead of every b for which a rule says so; otherwise as it was
    (a topological order, ties by position)."""
    if not rules:
        return ordered
    n = len(ordered)
    before = [[a for a in range(n) if a != b and any(r(a, b) for r in rules)] for b in range(n)]
    waiting = [len(p) for p in before]
    after: list[list[int]] = [[] for _ in range(n)]
    for b, preds in enumerate(before):
        for a in preds:
            after[a].append(b)
    ready = [i for i in range(n) if waiting[i] == 0]
    heapq.heapify(ready)
    out: list[C] = []
    while ready:
        i = heapq.heappop(ready)
        out.append(ordered[i])
        for b in after[i]:
            waiting[b] -= 1
            if waiting[b] == 0:
                heapq.heappush(ready, b)
    return out
