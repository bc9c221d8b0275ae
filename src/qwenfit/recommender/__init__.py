"""Stage 6, recommend: every model x precision x setting the machine can run, ranked the way an
expert would, each with its estimate, fit, speed, reasons and launch command (`ranking`)."""

from __future__ import annotations

from qwenfit.lazy import attach

TYPE_CHECKING = False
if TYPE_CHECKING:
    from qwenfit.recommender.ranking import Recommendation, RecommendResult, recommend

__all__ = ["RecommendResult", "Recommendation", "recommend"]
__getattr__, __dir__ = attach(
    __name__,
    {"Recommendation": ".ranking", "RecommendResult": ".ranking", "recommend": ".ranking"},
)
