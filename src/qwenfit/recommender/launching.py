"""`launch_plan()`: the command that starts a named model, or the top pick, checked against the
machine the way `check` checks it. This is the document `qwenfit launch --json` prints and the
REST API and MCP server answer; it lives here because without a model it asks the recommender.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.errors import NoFitError
from qwenfit.fit.preflight import check
from qwenfit.fit.verdict import Fit
from qwenfit.hardware.machine import Machine
from qwenfit.launch.commands import launch_command
from qwenfit.launch.common import Task
from qwenfit.launch.record import LaunchCommand
from qwenfit.memory.options import DEFAULT_MARGIN, FlashAttn
from qwenfit.recommender.policy import Prefer
from qwenfit.recommender.ranking import recommend
from qwenfit.specs.table import DEFAULT_FAMILY, ModelSpec, SpecTable, load_specs


class LaunchPlan(BaseModel):
    """The launch document: the steps, and whether the configuration fits the machine."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    fits: bool = Field(description="False: the steps would not load on this machine (exit 3).")
    fit: Fit = Field(description="The verdict for the configuration the steps start.")
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
    llama_cpp_build: int | None = None,
    family: str = DEFAULT_FAMILY,
    min_speed: float | None = None,
    prefer: Prefer = "quality",
    allow_offload: bool = False,
    nodes: int = 1,
    margin: int = DEFAULT_MARGIN,
    mmproj: str | None = None,
    table: SpecTable | None = None,
) -> LaunchPlan:
    """The steps that start `model` (None: the top recommendation) on `machine`.

    Whatever is not given (runtime, precision, context, KV cache type, vision tower) is
    completed exactly as `recommend(machine, models=[model])` would complete it, so the
    command started is the pick recommend shows. When no setting of the model fits, the model
    is checked at the runtime's defaults as `check` does: the plan says `fits: false` (and the
    CLI exits 3) with the verdict.

    Raises:
        NoFitError: no model is named and nothing fits the machine.
        UsageError: a bad value.
    """
    table = table or load_specs()
    result = recommend(
        machine,
        runtime=runtime,
        quant=quant,
        context=context,
        task=task,
        text_only=text_only,
        mtp=mtp,
        llama_cpp_build=llama_cpp_build,
        family=family,
        min_speed=min_speed,
        prefer=prefer,
        kv_cache=kv_cache,
        parallel=parallel,
        ubatch=ubatch,
        flash_attn=flash_attn,
        allow_offload=allow_offload,
        nodes=nodes,
        margin=margin,
        limit=1,
        models=None if model is None else [model],
        table=table,
    )
    if result.recommendations:
        pick = result.recommendations[0]
        cmd = pick.launch
        if mmproj is not None:  # the projector file given with a local GGUF
            cmd = launch_command(pick.estimate, task=task, machine=machine, mmproj=mmproj)
        return LaunchPlan(fits=True, fit=pick.fit, launch=cmd)
    if model is None:
        raise NoFitError("nothing fits this machine; see 'qwenfit recommend'")
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
        llama_cpp_build=llama_cpp_build,
        allow_offload=allow_offload,
        nodes=nodes,
        margin=margin,
        table=table,
    )
    cmd = launch_command(checked.estimate, task=task, machine=machine, mmproj=mmproj)
    return LaunchPlan(fits=checked.fits, fit=checked.fit, launch=cmd)
