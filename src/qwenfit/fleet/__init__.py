"""Stage 7, fleet: which node pool of a Kubernetes cluster runs which Qwen model, and the
manifests that run it there. Reads the node list (`nodes`), groups alike nodes into pools whose
node is a `Machine` (`pools`), plans each pool through the recommender and the pre-flight check
(`planning`), and writes Deployments, Services and LeaderWorkerSets from the launch steps
(`manifests`); `online` reads the lists from the API server (extra `fleet`)."""

from __future__ import annotations

from qwenfit.lazy import attach

TYPE_CHECKING = False
if TYPE_CHECKING:
    from qwenfit.fleet.manifests import Settings, to_yaml
    from qwenfit.fleet.online import read_cluster
    from qwenfit.fleet.planning import fleet
    from qwenfit.fleet.record import FleetResult, PoolAnswer, PoolPlan

__all__ = [
    "FleetResult",
    "PoolAnswer",
    "PoolPlan",
    "Settings",
    "fleet",
    "read_cluster",
    "to_yaml",
]
__getattr__, __dir__ = attach(
    __name__,
    {
        "FleetResult": ".record",
        "PoolAnswer": ".record",
        "PoolPlan": ".record",
        "Settings": ".manifests",
        "fleet": ".planning",
        "read_cluster": ".online",
        "to_yaml": ".manifests",
    },
)
