"""docs/benchmarks.md from the measured parts (tables, plot links, targets)."""

from __future__ import annotations

import os
import statistics
from typing import Any

from report.common import gib, pct, table

SHORT = {"qwen3.5-0.8b": "0.8B", "qwen3.5-2b": "2B", "qwen3.5-4b": "4B", "qwen3.5-9b": "9B",
         "qwen3.5-27b": "27B", "qwen3.5-35b-a3b": "35B-A3B", "qwen3.5-122b-a10b": "122B-A10B",
         "qwen3.5-397b-a17b": "397B-A17B"}


def _row(rows: list[dict[str, Any]], label: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["command"] == label), None)


def _attribution(imp: dict[str, Any], n: int = 6) -> str:
    parts = list(imp["by_package_ms"].items())[:n]
    return ", ".join(f"{k} {v:.0f} ms" for k, v in parts)


def targets(startup: dict[str, Any]) -> list[dict[str, Any]]:
    """The start-up targets (issue 13), met or missed, with the measured reason."""
    rows = startup["rows"]
    base = _row(rows, "python -c pass")
    llm = _row(rows, "llmfit recommend -n 5 --json")
    att = startup["importtime"][0]
    assert base
    out = []
    for label in ("qwenfit recommend --json", "qwenfit check 9b --vram 24GB --json"):
        row = _row(rows, label)
        assert row
        ok = row["median_s"] <= 0.150
        beside = ""
        if llm and llm["ok"]:
            beside = (f"; `llmfit recommend` {llm['median_s'] * 1000:.0f} ms in the same run "
                      f"({llm['median_s'] / row['median_s']:.2f}x qwenfit)")
        out.append({
            "target": f"`{label}` median <= 150 ms (whole process)",
            "measured": f"{row['median_s'] * 1000:.0f} ms{beside}", "met": ok,
            "reason": "" if ok else (
                f"imports take {att['total_import_ms']:.0f} ms of the {att['wall_ms']:.0f} ms "
                f"`recommend --json` runs under `python -X importtime` ({_attribution(att)}); "
                f"the bare interpreter start is {base['median_s'] * 1000:.0f} ms; load average "
                f"{startup['load_average'][0]:.1f} on {os.cpu_count()} cores"),
        })
    for plan in startup["in_process"]:
        ok = plan["median_ms"] <= 20
        out.append({
            "target": f"`recommend()` in-process <= 20 ms: {plan['plan']}",
            "measured": f"{plan['median_ms']:.1f} ms median, {plan['min_ms']:.1f} ms min",
            "met": ok, "reason": "" if ok else "see the profile in docs/benchmarks.md",
        })
    return out


def _startup(s: dict[str, Any], img: str | None) -> list[str]:
    rows = s["rows"]
    out = ["## 1. Start-up and latency", "",
           f"Whole-process wall time (Popen to wait4), median of {s['runs']} runs after one "
           "warm-up, the commands interleaved round-robin with the order rotated and reversed "
           "every other round (A/B alternation), so machine drift hits every command alike. "
           "Peak RSS is the process's own `ru_maxrss`. qwenfit runs from "
           f"`{s['python']}`. `x python` = median / median of `python -c pass`; "
           "`x qwenfit` = the peer's median / qwenfit's median for the command answering the "
           "same question (recommend, hardware probe).", ""]
    out.append(table(
        ["tool", "command", "median ms", "min-max ms", "x python", "x qwenfit",
         "peak RSS MiB", "exit"],
        ([r["tool"], f"`{r['command']}`", f"{r['median_s'] * 1000:.1f}",
          f"{r['min_s'] * 1000:.0f}-{r['max_s'] * 1000:.0f}", f"{r['x_python']:.1f}",
          f"{r['x_qwenfit']:.2f}" if r["x_qwenfit"] else None,
          f"{r['peak_rss_bytes'] / 2**20:.0f}",
          "ok" if r["ok"] else f"rc {r['exit_codes']} (not a valid timing)"] for r in rows)))
    notes = [r for r in rows if r["note"]]
    if notes:
        out += ["", *(f"* `{r['command']}`: {r['note']}" for r in notes)]
    if img:
        out += ["", f"![start-up times]({img})"]
    out += ["", "Where the time goes (`python -X importtime`, median self time per top-level "
            "package over the runs; importtime itself adds some overhead):", ""]
    out.append(table(["command", "wall ms (with -X importtime)", "imports ms", "top packages"],
                     ([f"`python {a['argv']}`", f"{a['wall_ms']:.0f}",
                       f"{a['total_import_ms']:.0f}", _attribution(a, 8)]
                      for a in s["importtime"])))
    out += ["", "`recommend()` inside one warm process (the library's hot path), median and "
            "minimum of repeated calls per plan; load average at the time "
            f"{s['load_average'][0]:.1f} on {os.cpu_count()} cores:", ""]
    out.append(table(["plan", "median ms", "min ms"],
                     ([p["plan"], f"{p['median_ms']:.1f}", f"{p['min_ms']:.1f}"]
                      for p in s["in_process"])))
    out += ["", "Reproduce: `python benchmarks/run_all.py` (all parts) after "
            "`bash benchmarks/peers/setup.sh` (the peers' venvs); the start-up part alone is "
            "`report/startup.py`'s `run()`."]
    return out


def _accuracy(a: dict[str, Any], img: str | None) -> list[str]:
    out = ["## 2. Memory accuracy against llama.cpp's measured buffers", "",
           "Reference: `tests/fixtures/measured/llamacpp_memory.json`, llama.cpp's own buffer "
           "bytes (weights, KV, recurrent state, compute + output) for each Qwen3.5 size at "
           "4k/32k/128k/256k tokens (BF16 weights, f16 KV, ubatch 512, flash attention on, one "
           "sequence; also Q4_K_M at 4k for 0.8B and 9B), measured on CPU with zero-weight "
           "GGUFs (same tensor shapes and types). Error = (estimate - measured) / measured. "
           "Peers' numbers are `benchmarks/results/peers_estimates.json` "
           "(see benchmarks/peers/README.md for how each tool was driven offline). "
           "`under` counts totals below the measured need (an OOM risk). Peers that include "
           "the vision tower or MTP weights in their total, or have no KV term, are off by "
           "exactly that; the reference is what llama.cpp allocates for the text model.", ""]
    out.append(table(
        ["tool", "cases", "answered", "total mean abs %", "total median abs %", "total max abs %",
         "under", "KV mean abs %", "weights mean abs %", "note"],
        ([s["tool"], s["cases"], s["answered"], pct(s["total_mean"], False),
          pct(s["total_median"], False), pct(s["total_max"], False), s["under"],
          pct(s["kv_mean"], False), pct(s["weights_mean"], False), s["note"] or None]
         for s in a["summary"])))
    if img:
        out += ["", f"![accuracy by context]({img})"]
    tools = [s["tool"] for s in a["summary"] if s["answered"]]
    out += ["", "Total error % per case (BF16 unless marked):", ""]
    cases = sorted({(r["model"], r["precision"], r["context"]) for r in a["rows"]},
                   key=lambda k: (list(SHORT).index(k[0]), k[1], k[2]))
    idx = {(r["tool"], r["model"], r["precision"], r["context"]): r for r in a["rows"]}
    body = []
    for m, p, c in cases:
        cells = []
        for t in tools:
            r = idx.get((t, m, p, c))
            cells.append(pct(r["total"]) if r and r["total"] is not None else None)
        ref = idx[("qwenfit", m, p, c)]["measured_total"] if ("qwenfit", m, p, c) in idx else None
        label = SHORT[m] + ("" if p == "bf16" else f" {p.upper()}")
        body.append([label, f"{c // 1024}k", gib(ref), *cells])
    out.append(table(["model", "ctx", "measured GiB", *tools], body))
    out += ["", "Parts, where the tool reports them: median |error| % of KV cache by context, "
            "and mean |error| % of weights (BF16 cases):", ""]
    ctxs = sorted({r["context"] for r in a["rows"]})
    body = []
    for t in tools:
        mine = [r for r in a["rows"] if r["tool"] == t and r["precision"] == "bf16" and r["ok"]]
        kv = [statistics.median(abs(r["kv"]) for r in mine if r["context"] == c)
              if any(r["context"] == c and r["kv"] is not None for r in mine) else None
              for c in ctxs]
        w = [abs(r["weights"]) for r in mine if r["weights"] is not None]
        body.append([t, *(pct(k, False) for k in kv),
                     pct(statistics.fmean(w), False) if w else None])
    out.append(table(["tool", *(f"KV {c // 1024}k" for c in ctxs), "weights"], body))
    q = a["qwenfit_all"]
    parts = ["weights", "kv", "state", "compute", "total"]
    out += ["", f"qwenfit per part over all {len(q)} measured configurations (also other KV "
            "types, ubatch sizes, flash attention off, 4 sequences):", ""]
    out.append(table(["part", "mean abs error %", "max abs error %"],
                     ([p, f"{statistics.fmean(abs(float(r[p])) for r in q):.2f}",
                       f"{max(abs(float(r[p])) for r in q):.2f}"] for p in parts)))
    return out


def _speed(sp: dict[str, Any], img: str | None) -> list[str]:
    peers = any("llmfit" in r for r in sp["rows"])
    out = ["## 3. Decode speed against published measurements", "",
           "qwenfit calibrates its bandwidth-efficiency factors on `data/speed_measurements.json` "
           "(median per device and dense/MoE), so predicting those points with all of them is "
           "in-sample. **The qwenfit column is leave-one-out**: each point is predicted by "
           "qwenfit's public `estimate()` with that point removed from its data "
           "(`qwenfit.memory.speed.calibrated_on`). `in-sample` is shown for comparison. "
           "Out-of-sample rows are published points not in qwenfit's data (other contexts of the "
           "same blog runs, context 50% filled, so asked at half the context) and one contended "
           "CPU run on this VM (unreliable: its runs spread 2.7-6.8 tok/s). llmfit: `llmfit "
           "--profile <GPU> plan` with the GPU's bandwidth from qwenfit's catalog ('gpu' run "
           "path), or its 'cpu_only' path on this VM; whichllm: its "
           "`estimate_tok_per_sec` for that GGUF file on `--gpu NAME`'s simulated GPU.", ""]
    head = ["model", "quant", "device", "ctx", "KV", "published", "qwenfit LOO", "in-sample"]
    head += ["llmfit", "whichllm"] if peers else []
    head += ["kind", "source"]
    body = []
    for r in sp["rows"]:
        def cell(v: float | None, ref: float = r["tokens_per_s"]) -> str | None:
            return None if v is None else f"{v:.1f} ({100 * (v - ref) / ref:+.0f}%)"
        row = [SHORT[r["model"]], r["quant"], r["gpu"] or "CPU (this VM)", r["context"],
               r["kv_cache"], f"{r['tokens_per_s']:.1f}", cell(r["qwenfit_loo"]),
               cell(r["qwenfit_in_sample"])]
        if peers:
            row += [cell(r.get("llmfit")), cell(r.get("whichllm"))]
        src = r["source"]
        src = f"<{src}>" if src.startswith("http") else src.split(" (")[0]
        row += [r["kind"] + (f": {r['note']}" if r.get("note") else ""), src]
        body.append(row)
    out.append(table(head, body))
    out += ["", "Mean / median / max absolute error %:", ""]
    names = {"qwenfit": "qwenfit (LOO where calibration)", "qwenfit_loo": "qwenfit LOO",
             "qwenfit_in_sample": "qwenfit in-sample"}
    out.append(table(["tool", "points", "n", "mean abs %", "median abs %", "max abs %"],
                     ([names.get(s["tool"], s["tool"]), s["kind"], s["n"], f"{s['mean']:.1f}",
                       f"{s['median']:.1f}", f"{s['max']:.1f}"] for s in sp["summary"]
                      if s["tool"] != "qwenfit_loo")))
    moe = [r for r in sp["rows"] if r["kind"] == "calibration" and r["device"] == "gpu"
           and "-a" in r["model"]]
    if len(moe) == 1 and moe[0]["qwenfit_loo"]:
        m = moe[0]
        out += ["", f"qwenfit's worst leave-one-out point, {SHORT[m['model']]} on {m['gpu']} "
                f"({100 * (m['qwenfit_loo'] / m['tokens_per_s'] - 1):+.0f}%), is its only MoE "
                "GPU measurement: without it qwenfit has no MoE GPU efficiency and borrows the "
                "dense one, which overrates how well a 3B-active MoE uses the bandwidth. More "
                "published MoE measurements would fix that factor."]
    if img:
        out += ["", f"![speed estimates]({img})"]
    return out


def _picks(p: dict[str, Any]) -> list[str]:
    out = ["## 4. Recommendation quality", "",
           "Each tool's Qwen3.5 pick for nine hypothetical machines (peers: "
           "`benchmarks/results/peers_picks.json`; qwenfit: `recommend(with_overrides(...), "
           "runtime='llama.cpp')`, its default 32k context and vision tower), then checked "
           "against llama.cpp's measured bytes: weights from `llamacpp_quant_sizes.json`, the "
           "token embedding (kept in RAM by llama.cpp) from `llamacpp_tensor_groups.json`, KV / "
           "state / compute from `llamacpp_memory.json` at the same context, the vision "
           "projector from `llamacpp_mmproj.json`; the `need source` column says where qwenfit's "
           "estimate filled a gap. GPU budget = the card's memory (the sum for 2x24 GB; for the "
           "36 GB Mac the 24 GiB macOS lets the GPU wire by default). CUDA/Metal context memory "
           "is in no table: less than 0.5 GiB left is marked tight. vllm-wizard picks nothing; "
           "its row is the largest model it says fits (BF16, 32k).", ""]
    body = []
    for r in p["rows"]:
        if "error" in r:
            body.append([r["machine"], r["tool"], None, None, None, None, None, None,
                         r["error"], None])
            continue
        n = r["need"]
        tps = r.get("tokens_per_s")
        body.append([r["machine"], r["tool"],
                     f"{SHORT[r['model']]} {r['quant'].upper()}" + (" +vision" if r["vision"]
                                                                     else ""),
                     f"{r['context'] // 1024}k", r["placement"],
                     f"{tps:.1f}" if tps else None,
                     gib(r.get("claimed_bytes")), gib(n.get("total")), r["verdict"],
                     n.get("source")])
    out.append(table(["machine", "tool", "pick", "ctx", "runs on", "its tok/s",
                      "its claim GiB", "measured need GiB", "verdict", "need source"], body))
    return out


def render(data: dict[str, Any], imgs: dict[str, str]) -> str:
    """The whole document."""
    meta = data["meta"]
    lines = ["# Benchmarks: qwenfit against the peer tools", "",
             f"Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}; "
             f"run time {meta['seconds']:.0f} s; with `--reuse-peers` the peers' estimates and "
             "picks are the ones `benchmarks/peers/*.py` last wrote to `benchmarks/results/`). "
             "Reproduce: see `benchmarks/README.md`. "
             f"Peer versions: {meta['versions']}.", "",
             "## Targets (issue 9)", ""]
    lines.append(table(["target", "measured", "met", "reason when missed"],
                       ([t["target"], t["measured"],
                         "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**"),
                         t["reason"] or None] for t in data["targets"])))
    lines += [""]
    lines += _startup(data["startup"], imgs.get("startup"))
    lines += [""]
    lines += _accuracy(data["accuracy"], imgs.get("accuracy"))
    lines += [""]
    lines += _speed(data["speed"], imgs.get("speed"))
    lines += [""]
    lines += _picks(data["picks"])
    lines += ["", "## Limits of these numbers", "",
              "* Memory references are llama.cpp CPU buffers (one commit, "
              f"{meta['llamacpp_commit']}); GPU runs add the CUDA context and may size compute "
              "buffers differently. Nothing here ran on a GPU.",
              "* hf-mem and accelerate need the Hugging Face Hub and were driven through their "
              "own functions with the Hub replaced by local stand-ins; whichllm's catalog was "
              "seeded offline with the eight Qwen3.5 repos (benchmarks/peers/README.md).",
              "* Published speeds are secondary sources (blogs, PR comments); qwenfit was "
              "calibrated on 11 of them, hence the leave-one-out column.",
              "* Start-up times are from one shared 2-core VM (other work ran beside it, hence "
              "the wide min-max spreads); ratios between commands measured in the same "
              "interleaved run are more portable than absolute times.",
              "* Picks: a tool's `its claim` is the memory it says its pick needs; llmfit's "
              "claims for the MoE picks are about half the measured need, which only the large "
              "cards absorb.", ""]
    return "\n".join(lines)

