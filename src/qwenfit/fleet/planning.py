"""`fleet()`: which node pool of a cluster runs which Qwen model, and how.

Each pool is planned as the machine one of its nodes is (`pools.Pool.machine_for`) through the same
public calls as `recommend`, `check` and `launch`: the best pick for one node; across nodes
(vLLM, tensor parallel within a node and pipeline parallel across, as `--nodes` plans it) when
that serves a better model, or when the model asked for fits no single node. The cluster-wide
answer is the best of the pools' plans. Manifests for it come from `fleet.manifests`.
"""

from __future__ import annotations

from typing import Any, Literal

from qwenfit.adapters import LLAMACPP, VLLM, runtime_named
from qwenfit.errors import NoFitError, UnsupportedError, UsageError
from qwenfit.fit.preflight import check
from qwenfit.fit.verdict import Fit
from qwenfit.fleet.manifests import Settings, manifests
from qwenfit.fleet.nodes import Node, parse_nodes, requested
from qwenfit.fleet.pools import Pool, group_pools
from qwenfit.fleet.record import FleetResult, PoolAnswer, PoolPlan
from qwenfit.launch.commands import launch_command
from qwenfit.launch.common import TASKS, Task
from qwenfit.launch.record import LaunchCommand
from qwenfit.memory.record import Estimate
from qwenfit.recommender.policy import tie_threshold
from qwenfit.recommender.ranking import recommend
from qwenfit.specs.table import ModelSpec, SpecTable, load_specs

# The runtimes a manifest can start (their images: fleet.manifests.IMAGES).
FLEET_RUNTIMES = (VLLM, LLAMACPP)


def _plan(
    pool: Pool,
    nodes: int,
    est: Estimate,
    fit: Fit,
    launch: LaunchCommand,
    quality: float | None,
    speed: float | None,
) -> PoolPlan:
    lay = est.layout
    return PoolPlan(
        pool=pool.name,
        nodes=nodes,
        gpus_per_pod=0 if lay.kind == "cpu" else len(lay.devices),
        model=est.model,
        runtime=est.runtime,
        quant=est.quant,
        context=est.context,
        tensor_parallel=lay.tensor_parallel,
        pipeline_parallel=lay.pipeline_parallel,
        quality_score=quality,
        tokens_per_second=speed,
        fits=fit.fits,
        estimate=est,
        fit=fit,
        launch=launch,
    )


def _checked(
    pool: Pool, spec: ModelSpec, nodes: int, ask: dict[str, Any], task: Task, table: SpecTable
) -> PoolPlan:
    """`check` of `spec` as `ask` configures it, on `nodes` nodes of the pool, with its steps."""
    runtime = VLLM if nodes > 1 else ask.get("runtime")
    machine = pool.machine_for(nodes)
    res = check(spec, machine, **{**ask, "runtime": runtime}, nodes=nodes, table=table)
    cmd = launch_command(res.estimate, table=table, task=task, machine=machine)
    return _plan(pool, nodes, res.estimate, res.fit, cmd, None, res.estimate.tokens_per_second)


def _spread(pool: Pool, runtime: str | None) -> range:
    """Node counts a multi-node vLLM plan may use on this pool (empty: none)."""
    whole = pool.gpu is not None and pool.gpu.mig_profile is None and pool.machine.gpus
    if not whole or runtime not in (None, VLLM):
        return range(0)
    return range(2, sum(1 for r in pool.free if r.devices) + 1)


def plan_model(
    pool: Pool, spec: ModelSpec, ask: dict[str, Any], task: Task, table: SpecTable
) -> PoolPlan:
    """`spec` on one node of the pool, or on the fewest nodes that hold it (vLLM)."""
    single = _checked(pool, spec, 1, ask, task, table)
    if single.fits:
        return single
    for n in _spread(pool, ask.get("runtime")):
        spread = _checked(pool, spec, n, ask, task, table)
        if spread.fits:
            return spread
    return single


def plan_best(pool: Pool, ask: dict[str, Any], task: Task, table: SpecTable) -> PoolPlan:
    """The recommender's top pick for one node; across nodes when that serves a better model
    (by more than the task's benchmark noise), on the fewest nodes that hold it."""
    top = recommend(pool.machine, **ask, task=task, limit=1, table=table).recommendations
    if not top:
        raise NoFitError("no Qwen model fits one node of this pool")
    pick = top[0]
    plan = _plan(
        pool, 1, pick.estimate, pick.fit, pick.launch, pick.quality_score, pick.tokens_per_second
    )
    spread = _spread(pool, ask.get("runtime"))
    if not spread:
        return plan
    wide_ask = {**ask, "runtime": VLLM}
    wide = recommend(
        pool.machine_for(spread[-1]), **wide_ask, task=task, limit=1, nodes=spread[-1], table=table
    ).recommendations
    if not wide or wide[0].quality_score <= pick.quality_score + tie_threshold(task):
        return plan
    w = wide[0]
    exact = {**wide_ask, "quant": w.quant, "kv_cache": w.kv_cache, "context": w.context}
    exact["text_only"] = w.text_only
    for n in spread:
        found = _checked(pool, table.get(w.model), n, exact, task, table)
        if found.fits:
            return found.model_copy(update={"quality_score": w.quality_score})
    return plan


def _rank(plan: PoolPlan) -> tuple[float, float, int, int]:
    return (
        -(plan.quality_score or 0.0),
        -(plan.tokens_per_second or 0.0),
        plan.nodes,
        plan.gpus_per_pod,
    )


def fleet(
    nodes: object,
    model: str | ModelSpec | None = None,
    *,
    task: Task = "chat",
    runtime: str | None = None,
    context: int | None = None,
    pods: object | None = None,
    source: Literal["file", "api"] = "file",
    origin: str = "node list",
    pool: str | None = None,
    settings: Settings | None = None,
    table: SpecTable | None = None,
) -> FleetResult:
    """Plan every pool of a cluster and pick the cluster-wide answer.

    `nodes`: the node list (`kubectl get nodes -o json`, parsed) or `Node` records; `pods`: the
    pod list, whose GPU, CPU and memory requests are taken off their nodes; `model`: plan this
    model on every pool (None: the best each pool runs); `pool`: write the manifests for this
    pool's plan instead of the best one; `settings`: manifest name, namespace, image tag.

    Raises:
        BadFileError: the node or pod list is malformed (the message names the field).
        UsageError: an unknown model, runtime, task or pool.
    """
    table = table or load_specs()
    if not isinstance(task, str) or task not in TASKS:
        raise UsageError(f"unknown task {task!r:.40}; allowed: {', '.join(TASKS)}")
    runtime = None if runtime is None else runtime_named(runtime)
    if runtime not in (None, *FLEET_RUNTIMES):
        raise UsageError(
            f"unknown runtime {runtime!r:.40} for a fleet; allowed: {', '.join(FLEET_RUNTIMES)}"
        )
    spec = table.get(model) if isinstance(model, str) else model
    parsed = nodes if isinstance(nodes, list) and all(isinstance(n, Node) for n in nodes) else None
    node_list: list[Node] = parsed or parse_nodes(nodes, origin)
    used = requested(pods, f"{origin} pods") if pods is not None else None
    pools = group_pools(node_list, used)
    if pool is not None and pool not in {p.name for p in pools}:
        raise UsageError(
            f"unknown pool {pool!r:.60}; pools: {', '.join(p.name for p in pools) or 'none'}"
        )
    ask: dict[str, Any] = {"runtime": runtime, "context": context}
    answers = []
    for p in pools:
        try:
            if p.gpu is not None and not p.machine.gpus:
                raise NoFitError(
                    "no free device" if p.gpus_per_node == 0 else "its labels give no GPU memory"
                )
            plan = plan_model(p, spec, ask, task, table) if spec else plan_best(p, ask, task, table)
            answers.append(
                PoolAnswer(pool=p, plan=plan, why_not=None if plan.fits else plan.fit.reason)
            )
        except (NoFitError, UnsupportedError) as e:
            answers.append(PoolAnswer(pool=p, plan=None, why_not=str(e)))
    fitting = [a.plan for a in answers if a.plan is not None and a.plan.fits]
    best = min(fitting, key=_rank) if fitting else None
    chosen = best
    if pool is not None:
        chosen = next((a.plan for a in answers if a.pool.name == pool), None)
        if chosen is None or not chosen.fits:
            why = next(a.why_not for a in answers if a.pool.name == pool)
            raise NoFitError(f"pool {pool} cannot serve it: {why}")
    by_name = {p.name: p for p in pools}
    objects = manifests(chosen, by_name[chosen.pool], settings or Settings()) if chosen else []
    skipped = sorted(n.name for n in node_list if not (n.ready and n.schedulable))
    notes = []
    if used is not None:
        notes.append("devices, CPU and memory requested by running pods are taken off their nodes")
    return FleetResult(
        source=source,
        model=spec.name if spec else None,
        task=task,
        pools=answers,
        best=best,
        manifests=objects,
        skipped_nodes=skipped,
        notes=notes,
    )
