"""`launch_plan()`: the command that starts a named model, or the top pick, checked against the
machine the way `check` checks it. This is the document `qwenfit launch --json` prints and the
REST API and MCP server answer; it lives here because without a model it asks the recommender.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.errors import NoFitError, UsageError
from qwenfit.fit.preflight import check
from qwenfit.fit.verdict import Fit
from qwenfit.hardware.machine import Machine
from qwenfit.launch.commands import launch_command
from qwenfit.launch.common import Task
from qwenfit.launch.record import LaunchCommand
from qwenfit.memory.options import DEFAULT_MARGIN, FlashAttn
from qwenfit.recommender.ranking import recommend
from qwenfit.specs.table import DEFAULT_FAMILY, ModelSpec, SpecTable, load_specs


class LaunchPlan(BaseModel):
    """The launch document: the steps, and whether the configuration fits the machine."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    schema_version: Literal[2] = 2
    fits: bool = Field(description="False: the steps would not load on this machine (exit 3).")
    fit: Fit | None = Field(description="The verdict for a named model; null for the top pick.")
    launch: LaunchCommand


def launch_plan(
    model: str | ModelSpec | None,
    machine: Machine,
    *,
    task: Task = "chat",
    runtime: str | None = None,
    quant: str | None = None,
    context: int | None = None,
    kv_cache: str | None = None,
    parallel: int = 1,
    ubatch: int | None = None,
    flash_attn: FlashAttn = "auto",
    text_only: bool = False,
    mtp: bool = False,
    family: str = DEFAULT_FAMILY,
    allow_offload: bool = False,
    nodes: int = 1,
    margin: int = DEFAULT_MARGIN,
    mmproj: str | None = None,
    table: SpecTable | None = None,
) -> LaunchPlan:
    """The steps that start `model` (None: the top recommendation) on `machine`.

    A named model is checked as `check` does; the plan says `fits: false` (and the CLI exits 3)
    when it would not load. Without a model, `quant` and `ubatch` do not apply.

    Raises:
        NoFitError: no model is named and nothing fits the machine.
        UsageError: a bad value, or `quant` / `ubatch` without a model.
    """
    table = table or load_specs()
    if model is None:
        for name, value in (("quant", quant), ("ubatch", ubatch)):
            if value is None:
                continue
            if name == "quant" and str(value).strip().lower() not in table.precisions:
                raise UsageError(
                    f"unknown precision {value!r}; allowed: {', '.join(table.precisions)}"
                )
            raise UsageError(f"--{name} {value} applies to a named MODEL; give one")
        result = recommend(
            machine,
            runtime=runtime,
            context=context,
            task=task,
            text_only=text_only,
            mtp=mtp,
            family=family,
            kv_cache=kv_cache,
            parallel=parallel,
            flash_attn=flash_attn,
            allow_offload=allow_offload,
            nodes=nodes,
            margin=margin,
            limit=1,
            table=table,
        )
        if not result.recommendations:
            raise NoFitError("nothing fits this machine; see 'qwenfit recommend'")
        best = result.recommendations[0].estimate
        cmd = launch_command(best, table=table, task=task, machine=machine)
        return LaunchPlan(fits=True, fit=None, launch=cmd)
    checked = check(
        model,
        machine,
        runtime=runtime,
        quant=quant,
        context=context,
        kv_cache=kv_cache,
        parallel=parallel,
        ubatch=ubatch,
        flash_attn=flash_attn,
        text_only=text_only,
        mtp=mtp,
        allow_offload=allow_offload,
        nodes=nodes,
        margin=margin,
        table=table,
    )
    cmd = launch_command(checked.estimate, table=table, task=task, machine=machine, mmproj=mmproj)
    return LaunchPlan(fits=checked.fits, fit=checked.fit, launch=cmd)
