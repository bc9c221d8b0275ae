"""The candidate space: model x precision x KV cache type x vision tower x placement, at a
context, each laid out by the runtime's own planner and checked by `fit.check_fit`.

Pruned so the whole space stays cheap: a precision whose weights alone exceed every byte the
machine could give is skipped without an estimate; the variants of one model x precision are
tried best first and the first that fits is kept (a configuration that fits at f16 with its
vision tower needs no KV or vision variant); configurations are resolved once per search and
their builds are memoized per `Config`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Literal

from qwenfit.adapters import RuntimeName, adapter
from qwenfit.fit.preflight import MIN_USEFUL_CONTEXT
from qwenfit.fit.verdict import Fit, check_fit, sequences_that_fit
from qwenfit.hardware.machine import Machine
from qwenfit.launch.common import Task
from qwenfit.memory import runtimes, speed
from qwenfit.memory.config import Config, configure
from qwenfit.memory.context import max_context_on
from qwenfit.memory.estimator import finish, with_speed
from qwenfit.memory.options import Options
from qwenfit.memory.record import Estimate
from qwenfit.recommender import policy, quality
from qwenfit.specs.table import ModelSpec, SpecTable

SpeedSource = Literal["estimated", "assumed RAM bandwidth", "unknown"]


def task_score(
    spec: ModelSpec, task: str, benchmarks: tuple[str, ...] | None = None
) -> tuple[bool, float]:
    """(has scores for this task, mean score) over `benchmarks` (default: the task's own);
    models without them fall back to 'chat'."""
    scores = spec.quality.scores if spec.quality else {}
    names = policy.TASK_BENCHMARKS[task] if benchmarks is None else benchmarks
    own = [scores[b] for b in names if b in scores]
    if own:
        return True, statistics.fmean(own)
    chat = [scores[b] for b in policy.TASK_BENCHMARKS["chat"] if b in scores]
    return False, statistics.fmean(chat) if chat else 0.0


def shared_benchmarks(models: list[ModelSpec], task: str) -> tuple[str, ...]:
    """The task's benchmarks reported by every model among `models` that reports any of them,
    so that every task score compared is a mean over the same benchmarks (the Qwen3.6 cards
    report MMLU-Pro, MMLU-Redux, C-Eval, SuperGPQA and GPQA but no IFEval, MMMLU or LongBench
    v2). A model that reports none of them has no task score (`task_score` -> False) and ranks
    after every model that has one (`policy.rank`, `comparable`)."""
    names = policy.TASK_BENCHMARKS[task]
    rated = [m.quality.scores for m in models if m.quality]
    rated = [s for s in rated if any(b in s for b in names)]
    common = tuple(b for b in names if all(b in s for s in rated))
    return common or names


@dataclass(frozen=True)
class Candidate:
    spec: ModelSpec
    cfg: Config
    est: Estimate
    fit: Fit
    has_task: bool
    quality: float
    speed: float | None
    speed_source: SpeedSource
    variant: int  # index in the variant order: 0 = nothing given up
    shrunk: bool  # context lowered below the target to fit

    @property
    def headroom(self) -> int:
        if self.est.gpu_bytes:
            return self.fit.gpu_budget_bytes - self.fit.gpu_need_bytes
        return self.fit.ram_budget_bytes - self.fit.ram_need_bytes

    @property
    def max_num_seqs(self) -> int | None:
        """vLLM: sequences of this context that the memory left for KV blocks holds."""
        return sequences_that_fit(self.est, self.fit)

    @property
    def concurrency(self) -> int:
        seqs = self.max_num_seqs
        return min(self.est.parallel, seqs) if seqs is not None else self.est.parallel

    @property
    def aggregate(self) -> float | None:
        return aggregate_throughput(self.speed, self.concurrency)

    def tiebreak(self) -> tuple[object, ...]:
        return (
            not self.has_task,
            -(self.aggregate or 0.0),
            -(self.speed or 0.0),
            -self.headroom,
            self.spec.name,
            self.est.quant,
            self.variant,
        )


def aggregate_throughput(per_user: float | None, sequences: int) -> float | None:
    """Tokens/s summed over `sequences` users. First model: decode is memory-bound, one step
    reads the weights once for every sequence in the batch, so the aggregate is the per-user
    speed times the number of sequences (an upper bound once compute saturates)."""
    return None if per_user is None else round(per_user * sequences, 1)


@dataclass(frozen=True)
class Miss:
    """A model x precision that fit in no variant: its least demanding try, when estimated."""

    spec: ModelSpec
    quant: str
    quality: float
    cfg: Config | None
    est: Estimate | None
    fit: Fit | None


@dataclass
class Search:
    """Everything fixed during one recommendation."""

    table: SpecTable
    machine: Machine
    runtime: RuntimeName
    task: Task
    options: Options
    only: set[str] | None
    kv_types: tuple[str, ...]
    quant: str | None = None  # only this precision (recommend --quant)
    configs: dict[tuple[str, str, str, bool], Config] = field(default_factory=dict)
    estimated: int = 0
    moe_offload: bool = False  # also try MoE experts in RAM (llama.cpp --n-cpu-moe)
    fp8_first: bool = False  # vLLM on FP8 GPUs: the official FP8 checkpoint, not BF16
    # The task's benchmarks every compared model with task scores reports (`shared_benchmarks`).
    benchmarks: tuple[str, ...] = ()

    def score(self, spec: ModelSpec) -> tuple[bool, float]:
        """`task_score` over the benchmarks this search compares on."""
        return task_score(spec, self.task, self.benchmarks or None)

    def weight_loss(self, spec: ModelSpec, quant: str) -> float:
        return quality.weight_loss(spec, quant, self.sizes()).value

    def sizes(self) -> dict[str, int]:
        return {m.name: m.params.total for m in self.table.models}

    def config(self, spec: ModelSpec, quant: str, kv: str, text_only: bool) -> Config:
        key = (spec.name, quant, kv, text_only)
        cfg = self.configs.get(key)
        if cfg is None:
            o = self.options.model_copy(
                update={
                    "runtime": self.runtime,
                    "quant": quant,
                    "kv_cache": kv,
                    "text_only": text_only,
                }
            )
            cfg = self.configs[key] = configure(spec, o, self.machine, self.table)
        return cfg

    def place(self, cfg: Config, context: int, allow_offload: bool) -> tuple[Config, Estimate]:
        """The candidate's memory through the one path `estimate` and `check` take; `finished`
        adds its speed (only candidates that fit need it)."""
        options = self.options.model_copy(
            update={"allow_offload": allow_offload, "context": context}
        )
        self.estimated += 1
        if options.nodes > 1:  # one node before several: across nodes only when needed
            one = finish(
                cfg, options.model_copy(update={"nodes": 1}), self.machine, self.table, speed=False
            )
            if check_fit(one[1], self.machine, self.options.margin).fits:
                return one
        return finish(cfg, options, self.machine, self.table, speed=False)

    def finished(self, est: Estimate) -> Estimate:
        """`est` as `estimate` returns it: with its speed and the notes that go with it."""
        spec = est.spec
        assert spec is not None  # built by this search
        return with_speed(est, spec, self.machine, self.table)

    def speed(self, est: Estimate) -> tuple[float | None, SpeedSource]:
        if est.tokens_per_second is not None:
            return est.tokens_per_second, "estimated"
        if est.ram_bytes and not self.machine.ram_bandwidth_bytes_per_s:
            assumed = self.machine.model_copy(
                update={"ram_bandwidth_bytes_per_s": policy.ASSUMED_RAM_BANDWIDTH}
            )
            s = speed.estimate_speed(est, assumed, self.table)
            if s is not None:
                return s, "assumed RAM bandwidth"
        return None, "unknown"

    def max_context(self, cfg: Config) -> int | None:
        return max_context_on(cfg, self.machine, self.options.margin)

    def pool_bytes(self, allow_offload: bool) -> int:
        """Every byte a configuration could be given: an upper bound for pruning."""
        m = self.machine
        if not m.gpus:
            return m.ram_usable_bytes
        share = adapter(self.runtime).gpu_share
        if share:
            gpu = int(sum(g.memory_total_bytes for g in m.gpus) * share)
        else:
            gpu = sum(g.memory_free_bytes for g in m.gpus)
        gpu *= self.options.nodes
        if allow_offload and adapter(self.runtime).layer_offload:
            return gpu + m.ram_usable_bytes
        return gpu

    def candidates(
        self, target: int, *, shrink: bool, allow_offload: bool
    ) -> tuple[list[Candidate], list[Miss]]:
        found: list[Candidate] = []
        misses: list[Miss] = []
        pool = self.pool_bytes(allow_offload)
        order = policy.variants(
            self.task,
            self.kv_types,
            self.options.kv_cache,
            self.options.text_only,
            adapter(self.runtime).drops_vision,
        )
        for spec in self.table.models:
            if self.only is not None and spec.name not in self.only:
                continue
            has_task, score = self.score(spec)
            limit = spec.context.extended or spec.context.native
            ctx_target = min(target, limit)
            for quant in runtimes.loadable_precisions(self.table, spec, self.runtime):
                if self.quant is not None and quant != self.quant:
                    continue
                if self._skip(spec, quant):
                    continue
                w_loss = self.weight_loss(spec, quant)
                experts = self._expert_offload(spec, allow_offload)
                artifact = spec.artifact(quant, adapter(self.runtime).format)
                if artifact is None:
                    continue
                best_q = score * (1 - w_loss)
                if artifact.text_bytes > (self.pool_bytes(True) if experts else pool):
                    misses.append(Miss(spec, quant, best_q, None, None, None))
                    continue
                got = self._first_fit(
                    spec,
                    quant,
                    order,
                    ctx_target,
                    shrink,
                    allow_offload,
                    has_task,
                    score,
                    w_loss,
                )
                if not isinstance(got, Candidate) and experts:
                    got2 = self._first_fit(
                        spec, quant, order, ctx_target, shrink, True, has_task, score, w_loss
                    )
                    got = got2 if isinstance(got2, Candidate) else got
                if isinstance(got, Candidate):
                    found.append(got)
                else:
                    misses.append(got)
        return found, misses

    def _skip(self, spec: ModelSpec, quant: str) -> bool:
        """BF16 where the vLLM recipe says to serve the official FP8 checkpoint instead."""
        fmt = adapter(self.runtime).format
        return self.fp8_first and quant == "bf16" and spec.artifact("fp8", fmt) is not None

    def _expert_offload(self, spec: ModelSpec, allow_offload: bool) -> bool:
        """Try routed experts in RAM for this MoE model (llama.cpp only: Ollama's scheduler
        splits whole layers)."""
        return (
            self.moe_offload
            and not allow_offload
            and spec.is_moe
            and adapter(self.runtime).expert_offload
            and bool(self.machine.gpus)
        )

    def _first_fit(
        self,
        spec: ModelSpec,
        quant: str,
        order: list[policy.Variant],
        target: int,
        shrink: bool,
        allow_offload: bool,
        has_task: bool,
        score: float,
        w_loss: float,
    ) -> Candidate | Miss:
        last: tuple[Config, Estimate, Fit] | None = None
        for i, (kv, text_only) in enumerate(order):
            cfg = self.config(spec, quant, kv, text_only)
            placed, est = self.place(cfg, target, allow_offload)
            fit = check_fit(est, self.machine, self.options.margin)
            shrunk = False
            if not fit.fits and shrink:
                ctx = self.max_context(placed)
                if ctx is not None and ctx >= MIN_USEFUL_CONTEXT:
                    placed, est = self.place(cfg, ctx, allow_offload)
                    fit = check_fit(est, self.machine, self.options.margin)
                    shrunk = True
            if fit.fits:
                est = self.finished(est)
                tps, source = self.speed(est)
                quality = score * (1 - w_loss) * (1 - policy.kv_quality_loss(kv))
                return Candidate(spec, placed, est, fit, has_task, quality, tps, source, i, shrunk)
            last = (placed, est, fit)
        assert last is not None
        return Miss(spec, quant, score * (1 - w_loss), *last)
