"""PNG plots for docs/benchmarks.md (matplotlib, Agg backend; only the full run needs it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {
    "baseline": "#888888",
    "qwenfit": "#1f77b4",
    "llmfit": "#d62728",
    "whichllm": "#2ca02c",
    "hf-mem": "#9467bd",
    "hf-mem-gguf": "#c5b0d5",
    "vllm-wizard": "#ff7f0e",
    "vllm-wizard-params-b": "#ffbb78",
    "accelerate": "#8c564b",
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return path


def accuracy(by_context: dict[str, dict[int, float]], path: Path) -> Path:
    """Median |total error| vs context, one line per tool (log y)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for tool, pts in by_context.items():
        xs = sorted(pts)
        ax.plot(
            xs,
            [max(pts[x], 0.01) for x in xs],
            marker="o",
            label=tool,
            color=COLORS.get(tool),
            linewidth=2.5 if tool == "qwenfit" else 1.2,
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sorted({x for p in by_context.values() for x in p}))
    ax.set_xticklabels([f"{x // 1024}k" for x in ax.get_xticks()])
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel("median |total error| vs llama.cpp, %")
    ax.set_title("Memory estimate error, 8 Qwen3.5 models, BF16, f16 KV")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def startup(rows: list[dict[str, Any]], path: Path) -> Path:
    """Median wall time per command (log x), coloured by tool."""
    plt = _plt()
    rows = [r for r in rows if r["ok"]]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.2))
    labels = [r["command"] if len(r["command"]) < 60 else r["command"][:57] + "..." for r in rows]
    ax.barh(
        range(len(rows)),
        [r["median_s"] * 1000 for r in rows],
        color=[COLORS.get(r["tool"], "#444") for r in rows],
    )
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median wall time, ms (log)")
    ax.set_title("Start-up: whole-process wall time, 2-core VM, no GPU")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return _save(fig, path)


def speed(rows: list[dict[str, Any]], path: Path) -> Path:
    """Estimated vs published decode tok/s per tool (log-log, y = x dashed)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    marks = {"qwenfit": "o", "llmfit": "s", "whichllm": "^"}
    for tool, mark in marks.items():
        pts = [
            (r["tokens_per_s"], r[tool])
            for r in rows
            if r.get(tool) and r.get("point", "decode") == "decode"
        ]
        if pts:
            label = "qwenfit (leave-one-out)" if tool == "qwenfit" else tool
            ax.scatter(
                *zip(*pts, strict=True), marker=mark, label=label, color=COLORS[tool], alpha=0.8
            )
    lo, hi = 2, 300
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("published / measured tok/s")
    ax.set_ylabel("estimated tok/s")
    ax.set_title("Decode speed estimates")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def realworld(rows: list[dict[str, Any]], path: Path) -> Path:
    """Signed error % per record, one column per quantity (symlog y)."""
    from report.realworld import quantities as measured_quantities

    plt = _plt()
    quantities = measured_quantities()
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, q in enumerate(quantities):
        errs = [v["error"] for r in rows if (v := r["values"].get(q)) and v["error"] is not None]
        ax.scatter([i] * len(errs), errs, s=22, alpha=0.7, color=COLORS["qwenfit"])
    for y in (-35, 35):
        ax.axhline(y, color="#cc8888", linewidth=0.8, linestyle="--")
    for y in (-10, 10):
        ax.axhline(y, color="#88aa88", linewidth=0.8, linestyle=":")
    ax.axhline(0, color="#444444", linewidth=0.8)
    ax.set_xticks(range(len(quantities)), quantities)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylabel("qwenfit error % (published = 0)")
    ax.set_title("qwenfit vs published measurements on real hardware")
    return _save(fig, path)
