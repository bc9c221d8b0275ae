"""Stage 5, launch: the steps (argv lists, environment, files) that start the runtime exactly as
an estimate sized it. It sits below the recommender because every recommendation carries its
command; `qwenfit launch` without a model composes the two in the CLI."""

from __future__ import annotations

from qwenfit.lazy import attach

TYPE_CHECKING = False
if TYPE_CHECKING:
    from qwenfit.launch.commands import LaunchCommand, launch_command

__all__ = ["LaunchCommand", "launch_command"]
__getattr__, __dir__ = attach(
    __name__, {"LaunchCommand": ".commands", "launch_command": ".commands"}
)
