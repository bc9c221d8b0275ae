"""Stage above `fleet`, `verify`: a running runtime's own figures against qwenfit's estimate.
It reads what a runtime on this machine loaded (`observe`, `logparse`), estimates the same
configuration (`compare`), times one generation (`bench`) and reads NVML per process
(`processes`)."""

from __future__ import annotations

from qwenfit.lazy import attach

TYPE_CHECKING = False
if TYPE_CHECKING:
    from qwenfit.verify.bench import BenchResult, time_generation
    from qwenfit.verify.compare import Verification, verify
    from qwenfit.verify.logparse import ServerLog, parse
    from qwenfit.verify.observe import DEFAULT_URLS, Observed, Unreachable, read_runtime
    from qwenfit.verify.processes import device_bytes

__all__ = [
    "DEFAULT_URLS",
    "BenchResult",
    "Observed",
    "ServerLog",
    "Unreachable",
    "Verification",
    "device_bytes",
    "parse",
    "read_runtime",
    "time_generation",
    "verify",
]
__getattr__, __dir__ = attach(
    __name__,
    {
        "BenchResult": ".bench",
        "time_generation": ".bench",
        "Verification": ".compare",
        "verify": ".compare",
        "ServerLog": ".logparse",
        "parse": ".logparse",
        "DEFAULT_URLS": ".observe",
        "Observed": ".observe",
        "Unreachable": ".observe",
        "read_runtime": ".observe",
        "device_bytes": ".processes",
    },
)
