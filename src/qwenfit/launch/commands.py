"""Launch commands for a configuration: argv lists, never shell strings, never executed here.

`LaunchCommand.shell` is the display form (each argument quoted with shlex), so a model path
with spaces, quotes, ';' or '$(...)' stays one argument when pasted into a shell. One module per
runtime builds the steps (`ollama`, `llamacpp`, `vllm`, `transformers`); `common` holds what
they share (sampling presets per task, YaRN, device pinning).
"""

from __future__ import annotations

import shlex

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qwenfit.hardware.machine import Machine
from qwenfit.launch.common import Task
from qwenfit.memory.record import Estimate
from qwenfit.specs.table import SpecTable


def shell_line(argv: list[str], env: dict[str, str]) -> str:
    """What to paste into a POSIX shell: every value quoted, so none can inject syntax."""
    prefix = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    return " ".join([*prefix, shlex.join(argv)])


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    argv: list[str]
    env: dict[str, str] = Field(default_factory=dict, description="Variables to set for argv.")
    purpose: str
    shell: str = Field("", description="argv and env quoted for a POSIX shell (derived).")

    @model_validator(mode="after")
    def _derive_shell(self) -> Step:
        object.__setattr__(self, "shell", shell_line(self.argv, self.env))
        return self


class LaunchFile(BaseModel):
    """A file the user writes (in the working directory) before running the steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="Relative path, as the steps refer to it.")
    text: str
    purpose: str


class LaunchCommand(BaseModel):
    """The files to write, then the steps that start `model` as estimated, in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runtime: str
    model: str
    task: Task = "chat"
    files: list[LaunchFile] = []
    steps: list[Step]
    notes: list[str] = []


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
    from qwenfit.launch import llamacpp, ollama, transformers, vllm
    from qwenfit.specs.table import load_specs

    table = table or load_specs()
    spec = table.get(est.model)
    if est.runtime == "ollama":
        return ollama.command(est, spec, table, task, machine)
    if est.runtime == "llama.cpp":
        return llamacpp.command(est, spec, table, task, machine, mmproj)
    if est.runtime == "vllm":
        return vllm.command(est, spec, table, task, machine)
    return transformers.command(est, spec, table, task, machine)
