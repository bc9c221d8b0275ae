"""`qwenfit estimate MODEL --plot FILE`: the sweep's memory curves as a PNG or SVG picture.

matplotlib is an optional extra (`pip install "qwenfit[plot]"`), imported only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from qwenfit.errors import QwenfitError, UsageError
from qwenfit.units import GiB, format_context

if TYPE_CHECKING:
    from qwenfit.memory import SweepResult

FORMATS = (".png", ".svg")


def check_path(path: str) -> None:
    if Path(path).suffix.lower() not in FORMATS:
        raise UsageError(f"invalid --plot {path!r}: the file name must end in .png or .svg")


def plot_sweep(result: SweepResult, path: str, title: str | None = None) -> None:
    """Memory against context, one curve per KV type, the machine's budget as a line."""
    check_path(path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(
            "--plot needs matplotlib: pip install 'qwenfit[plot]' (or pip install matplotlib)"
        ) from None
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=100)
    on_gpu = any(r.gpu_bytes for r in result.rows)  # the budget is the GPUs', else the RAM's
    for kv in result.kv_types:
        rows = [r for r in result.rows if r.kv_cache == kv]
        ax.plot(
            [r.context for r in rows],
            [(r.gpu_bytes if on_gpu else r.ram_bytes) / GiB for r in rows],
            marker="o",
            label=f"KV {kv}",
        )
        best = result.max_context.get(kv)
        if best:
            ax.axvline(best, linestyle=":", linewidth=1, color=ax.lines[-1].get_color())
    if result.budget_bytes is not None:
        ax.axhline(result.budget_bytes / GiB, color="black", linewidth=1.5, label="budget")
    ax.set_xscale("log", base=2)
    ax.set_xticks(result.contexts, [format_context(c) for c in result.contexts])
    ax.set_xlabel("context (tokens per sequence)")
    ax.set_ylabel("GPU memory (GiB)" if on_gpu else "RAM (GiB)")
    ax.set_title(title or f"{result.model} on {result.runtime}, {result.quant}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        fig.savefig(path, metadata={"Date": None} if path.lower().endswith(".svg") else None)
    except OSError as e:
        raise QwenfitError(f"cannot write --plot file {path!r} ({e.strerror})") from None
    finally:
        plt.close(fig)
