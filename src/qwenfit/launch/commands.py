"""Launch commands for a configuration: argv lists, never shell strings, never executed here.

`LaunchCommand.shell` is the display form (each argument quoted with shlex), so a model path
with spaces, quotes, ';' or '$(...)' stays one argument when pasted into a shell. One module per
runtime builds the steps (`ollama`, `llamacpp`, `vllm`, `transformers`, `mlx`) into the records of
`record`; `common` holds what they share (sampling presets per task, YaRN, device pinning).
"""

from __future__ import annotations

from qwenfit.adapters import LLAMACPP, MLX, OLLAMA, VLLM
from qwenfit.errors import UsageError
from qwenfit.hardware.machine import Machine
from qwenfit.launch import llamacpp, ollama, transformers, vllm
from qwenfit.launch.common import Task
from qwenfit.launch.mlx import mlx_command
from qwenfit.launch.record import LaunchCommand, LaunchFile, Step, shell_line
from qwenfit.memory.record import Estimate
from qwenfit.specs.table import SpecTable

__all__ = ["LaunchCommand", "LaunchFile", "Step", "launch_command", "shell_line"]


def launch_command(
    est: Estimate,
    *,
    table: SpecTable | None = None,
    task: Task = "chat",
    machine: Machine | None = None,
    mmproj: str | None = None,
) -> LaunchCommand:
    """The command(s) that start the configuration `est` describes.

    `task` picks the sampling preset and the agent / code settings (same meaning as the
    recommender's); `machine` (the one `est` was laid out on) lets devices be pinned by UUID
    and vLLM's sequence count follow the memory left; `mmproj` is the projector file given
    with a local GGUF.
    """
    from qwenfit.specs.table import load_specs

    if not isinstance(est, Estimate) or not isinstance(table, (SpecTable, type(None))):
        raise UsageError(f"invalid estimate {est!r:.60}: must be an Estimate (see estimate())")
    table = table or load_specs()
    spec = est.spec or table.get(est.model)  # a record read back from JSON carries no spec
    if est.runtime == OLLAMA:
        return ollama.command(est, spec, table, task, machine)
    if est.runtime == LLAMACPP:
        return llamacpp.command(est, spec, table, task, machine, mmproj)
    if est.runtime == VLLM:
        return vllm.command(est, spec, table, task, machine)
    if est.runtime == MLX:
        return mlx_command(est, spec, table, task)
    return transformers.command(est, spec, table, task, machine)
