"""The launch records: files to write and steps (argv lists, environment) to run, in order."""

from __future__ import annotations

import shlex

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qwenfit.launch.common import Task


def shell_line(argv: list[str], env: dict[str, str]) -> str:
    """What to paste into a POSIX shell: every value quoted, so none can inject syntax."""
    prefix = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    return " ".join([*prefix, shlex.join(argv)])


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

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

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    path: str = Field(description="Relative path, as the steps refer to it.")
    text: str
    purpose: str


class LaunchCommand(BaseModel):
    """The files to write, then the steps that start `model` as estimated, in order."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    runtime: str
    model: str
    task: Task = "chat"
    files: list[LaunchFile] = []
    steps: list[Step]
    notes: list[str] = []
