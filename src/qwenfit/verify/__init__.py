"""Stage above `recommender`, `verify`: a running runtime's own figures against qwenfit's
estimate. It reads what a runtime on this machine loaded (`observe`, `logparse`), estimates the
same configuration (`compare`), and can time one generation (`bench`)."""

from __future__ import annotations

from qwenfit.lazy import attach

TYPE_CHECKING = False
if TYPE_CHECKING:
    from qwenfit.verify.compare import Verification, verify
    from qwenfit.verify.logparse import ServerLog, parse
    from qwenfit.verify.observe import Observed, observe

__all__ = ["Observed", "ServerLog", "Verification", "observe", "parse", "verify"]
__getattr__, __dir__ = attach(
    __name__,
    {
        "Verification": ".compare",
        "verify": ".compare",
        "ServerLog": ".logparse",
        "parse": ".logparse",
        "Observed": ".observe",
        "observe": ".observe",
    },
)
