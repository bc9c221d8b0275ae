"""The fleet records: a pool's plan, each pool's answer, and the `qwenfit fleet` document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.fit.verdict import Fit
from qwenfit.fleet.pools import Pool
from qwenfit.launch.common import Task
from qwenfit.launch.record import LaunchCommand
from qwenfit.memory.record import Estimate


class PoolPlan(BaseModel):
    """What one pool runs: the configuration, its verdict and the launch steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pool: str
    nodes: int = Field(ge=1, description="Nodes of the pool one copy of the model spans.")
    gpus_per_pod: int = Field(ge=0, description="Devices each pod requests (one pod a node).")
    model: str
    runtime: str
    quant: str
    context: int
    tensor_parallel: int | None
    pipeline_parallel: int | None
    quality_score: float | None = Field(description="The recommender's task score; null for "
                                         "a model asked for by name.")  # fmt: skip
    tokens_per_second: float | None
    fits: bool
    estimate: Estimate
    fit: Fit
    launch: LaunchCommand


class PoolAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pool: Pool
    plan: PoolPlan | None
    why_not: str | None = Field(None, description="Why this pool has no plan.")


class FleetResult(BaseModel):
    """What `fleet()` answers: each pool with its plan, the best one, and its manifests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["file", "api"]
    model: str | None = Field(description="The model asked for; null: the best each pool runs.")
    task: Task
    pools: list[PoolAnswer]
    best: PoolPlan | None = Field(description="The cluster-wide answer; null: no pool serves it.")
    manifests: list[dict[str, Any]] = Field(
        description="Kubernetes objects that run `best` (or the pool asked for)."
    )
    skipped_nodes: list[str] = Field(default_factory=list, description="Not ready or cordoned.")
    notes: list[str] = []
