"""Stage 6, recommend: every model x precision x setting the machine can run, ranked the way an
expert would, each with its estimate, fit, speed, reasons and launch command (`ranking`, with
`policy`, `search` and `explain`); `launching` answers "the command for this model, or the top
pick, checked against the machine"."""

from __future__ import annotations

from qwenfit.lazy import attach

TYPE_CHECKING = False
if TYPE_CHECKING:
    from qwenfit.recommender.launching import LaunchPlan, launch_plan
    from qwenfit.recommender.ranking import Recommendation, RecommendResult, recommend

__all__ = ["LaunchPlan", "RecommendResult", "Recommendation", "launch_plan", "recommend"]
__getattr__, __dir__ = attach(
    __name__,
    {
        "Recommendation": ".ranking",
        "RecommendResult": ".ranking",
        "recommend": ".ranking",
        "LaunchPlan": ".launching",
        "launch_plan": ".launching",
    },
)
