"""Stage 4, fit: does an estimate fit a machine (`verdict`), and the pre-flight `check` that
answers yes or no for one configuration and names the nearest one that fits (`preflight`)."""

from __future__ import annotations

from qwenfit.lazy import attach

TYPE_CHECKING = False
if TYPE_CHECKING:
    from qwenfit.fit.margin import Margin, parse_margin
    from qwenfit.fit.preflight import CheckResult, check
    from qwenfit.fit.verdict import Fit, check_fit

__all__ = ["CheckResult", "Fit", "Margin", "check", "check_fit", "parse_margin"]
__getattr__, __dir__ = attach(
    __name__,
    {
        "CheckResult": ".preflight",
        "check": ".preflight",
        "Fit": ".verdict",
        "check_fit": ".verdict",
        "Margin": ".margin",
        "parse_margin": ".margin",
    },
)
