"""Stage 5, launch: the files and steps (argv lists, environment) that start the runtime exactly
as an estimate sized it, one module per runtime (ollama, llamacpp, vllm, transformers) plus
`common` (task sampling presets, YaRN, device pinning). It sits below the recommender because
every recommendation carries its command; `qwenfit launch` without a model composes the two in
the CLI."""

from __future__ import annotations

from qwenfit.lazy import attach

TYPE_CHECKING = False
if TYPE_CHECKING:
    from qwenfit.launch.commands import LaunchCommand, LaunchFile, launch_command

__all__ = ["LaunchCommand", "LaunchFile", "launch_command"]
__getattr__, __dir__ = attach(
    __name__,
    {"LaunchCommand": ".commands", "LaunchFile": ".commands", "launch_command": ".commands"},
)
