"""Peer tools' memory estimates for the eight Qwen3.5 models at 4k/32k/128k/256k context.

Writes benchmarks/results/peers_estimates.json: per (model, context, precision, tool) the
tool's KV cache, weights and total bytes (null where it reports none) plus the raw numbers
in the tool's own units. No comparison is made here. Offline; needs setup.sh's venvs.
Precisions: bf16 (the measured llama.cpp records) and q4_k_m, mapped to each tool's nearest
option (noted per case). Run: python benchmarks/peers/accuracy_peers.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import _common as c

GB = 1e9
LLMFIT_QUANT = {"bf16": "BF16", "q4_k_m": "Q4_K_M"}
WHICHLLM_QUANT = {"bf16": "BF16", "q4_k_m": "Q4_K_M"}
ACCEL_DTYPE = {"bf16": "float16", "q4_k_m": "int4"}
HFMEM_GGUF = {"bf16": "BF16", "q4_k_m": "Q4_K_M"}


def case(
    model: str,
    ctx: int,
    prec: str,
    tool: str,
    kv: float | None = None,
    weights: float | None = None,
    total: float | None = None,
    note: str = "",
    raw: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One output record (bytes rounded to int)."""

    def as_int(x):
        return None if x is None else round(x)

    return {
        "model": model,
        "context": ctx,
        "precision": prec,
        "tool": tool,
        "kv_cache_bytes": as_int(kv),
        "weights_bytes": as_int(weights),
        "total_bytes": as_int(total),
        "note": note,
        "raw": raw or {},
    }


def grid():
    """(spec, context, precision) for every case."""
    for spec in c.specs():
        for ctx in c.CONTEXTS:
            for prec in c.PRECISIONS:
                yield spec, ctx, prec


def run_llmfit() -> list[dict[str, Any]]:
    """`llmfit plan <repo> --context N --quant Q --json` from its embedded catalog."""
    out = []
    exe = str(c.venv_bin("llmfit"))
    for spec, ctx, prec in grid():
        argv = [
            exe,
            "plan",
            spec["hf_repo"],
            "--context",
            str(ctx),
            "--quant",
            LLMFIT_QUANT[prec],
            "--json",
            "--no-dashboard",
        ]
        res = c.run_cmd(argv)
        if res["rc"] != 0:
            out.append(case(spec["name"], ctx, prec, "llmfit", note=c.short_error(res)))
            continue
        plan = json.loads(res["stdout"])
        fp16 = next(k for k in plan["kv_alternatives"] if k["kv_quant"] == "fp16")
        raw = {
            "disk_size_gb": plan["disk_size_gb"],
            "kv_cache_gb": fp16["kv_cache_gb"],
            "memory_required_gb": fp16["memory_required_gb"],
            "minimum_vram_gb": plan["minimum"]["vram_gb"],
            "quantization": plan["quantization"],
            "model_name": plan["model_name"],
        }
        out.append(
            case(
                spec["name"],
                ctx,
                prec,
                "llmfit",
                kv=fp16["kv_cache_gb"] * c.GiB,
                weights=plan["disk_size_gb"] * GB,
                total=fp16["memory_required_gb"] * GB,
                note="weights = disk_size_gb (GB); kv_cache_gb is GiB in its code (0.125 at 4k for "
                "9B = 128 MiB); total = memory_required_gb as printed (GB weights + GiB KV + "
                "0.5 overhead, summed without conversion) x 1e9",
                raw=raw,
            )
        )
    return out


def run_whichllm(cache_home: Path) -> list[dict[str, Any]]:
    """whichllm's engine.vram functions on its own cache, seeded from Hub-style records."""
    c.seed_whichllm_cache(cache_home)
    reqs = [
        {
            "repo": s["hf_repo"],
            "context": ctx,
            "quant": WHICHLLM_QUANT[p],
            "model": s["name"],
            "precision": p,
        }
        for s, ctx, p in grid()
    ]
    res = c.run_driver(
        "whichllm",
        "whichllm_driver.py",
        {"mode": "estimate", "cases": reqs},
        env={"XDG_CACHE_HOME": str(cache_home)},
    )
    out = []
    for r in res:
        if "error" in r:
            out.append(case(r["model"], r["context"], r["precision"], "whichllm", note=r["error"]))
            continue
        raw = {
            k: r[k]
            for k in (
                "parameter_count",
                "parameter_count_active",
                "is_moe",
                "bytes_per_weight",
                "activation_bytes",
            )
        }
        out.append(
            case(
                r["model"],
                r["context"],
                r["precision"],
                "whichllm",
                kv=r["kv_cache_bytes"],
                weights=r["weights_bytes"],
                total=r["total_bytes"],
                note="as `whichllm plan`: weights = Hub params x bytes/weight of the "
                "quant; total = weights + KV + activations + 0.5 GB",
                raw=raw,
            )
        )
    return out


def run_hfmem(configs: dict[str, dict[str, Path]]) -> list[dict[str, Any]]:
    """hf_mem.run(experimental=True) against the local Hub stand-in (safetensors and GGUF)."""
    reqs = []
    for spec, ctx, prec in grid():
        base = {"model": spec["name"], "precision": prec, "context": ctx}
        if prec == "bf16":
            art = c.artifact(spec, "bf16", "safetensors")
            reqs.append(
                {
                    **base,
                    "tool": "hf-mem",
                    "kind": "safetensors",
                    "repo": spec["hf_repo"],
                    "config_path": str(configs[spec["name"]]["official"] / "config.json"),
                    "components": {
                        "model.language_model": art["text_bytes"],
                        "model.visual": art["vision_bytes"],
                        "mtp": art["mtp_bytes"],
                    },
                }
            )
        gguf = c.GGUF_DIR / f"{spec['name']}-{HFMEM_GGUF[prec]}.gguf"
        if gguf.exists():
            reqs.append(
                {
                    **base,
                    "tool": "hf-mem-gguf",
                    "kind": "gguf",
                    "repo": f"local/{spec['display_name']}-GGUF",
                    "gguf_path": str(gguf),
                }
            )
    res = c.run_driver("hf-mem", "hfmem_driver.py", {"cases": reqs})
    got = {(r["tool"], r["model"], r["context"], r["precision"]): r for r in res}
    out = []
    for spec, ctx, prec in grid():
        for tool in ("hf-mem", "hf-mem-gguf"):
            r = got.get((tool, spec["name"], ctx, prec))
            if r is None:
                why = (
                    "the official repos are BF16 safetensors; no Q4_K_M safetensors repo "
                    "(see hf-mem-gguf)"
                    if tool == "hf-mem"
                    else f"no local GGUF {spec['name']}-{HFMEM_GGUF[prec]}.gguf in {c.GGUF_DIR}"
                )
                out.append(case(spec["name"], ctx, prec, tool, note=why))
            elif "error" in r:
                out.append(case(spec["name"], ctx, prec, tool, note=r["error"]))
            else:
                j = r["result"]
                out.append(
                    case(
                        spec["name"],
                        ctx,
                        prec,
                        tool,
                        kv=j.get("kv_cache"),
                        weights=j.get("memory"),
                        total=j.get("total_memory"),
                        note="memory = checkpoint tensor bytes (incl. vision + MTP for "
                        "safetensors; GGUF text tower); total = memory + KV",
                        raw=j,
                    )
                )
    return out


def _vllm_wizard_plan(model_arg: str, ctx: int, prec: str, extra: list[str]) -> dict[str, Any]:
    """One `vllm-wizard plan ... --json` call."""
    argv = [
        str(c.venv_bin("vllm-wizard")),
        "plan",
        "--model",
        model_arg,
        "--max-model-len",
        str(ctx),
        "--concurrency",
        "1",
        "--gpu",
        "RTX 4090",
        "--json",
        *extra,
    ]
    argv += ["--dtype", "bf16"] if prec == "bf16" else ["--quantization", "awq"]
    return c.run_cmd(argv)


def run_vllm_wizard(configs: dict[str, dict[str, Path]]) -> list[dict[str, Any]]:
    """`vllm-wizard plan --model DIR` (official + flattened config) and `--params-b`."""
    out = []
    for spec, ctx, prec in grid():
        variants = (
            ("vllm-wizard", str(configs[spec["name"]]["flat"]), []),
            ("vllm-wizard-official", str(configs[spec["name"]]["official"]), []),
            (
                "vllm-wizard-params-b",
                spec["hf_repo"],
                ["--params-b", f"{spec['params']['total'] / 1e9:.3f}"],
            ),
        )
        for tool, model_arg, extra in variants:
            res = _vllm_wizard_plan(model_arg, ctx, prec, extra)
            try:
                # rich soft-wraps long strings: allow the newlines it inserts
                feas = json.loads(res["stdout"], strict=False)["feasibility"]
            except (json.JSONDecodeError, KeyError):
                out.append(
                    case(
                        spec["name"], ctx, prec, tool, note=f"rc {res['rc']}: {c.short_error(res)}"
                    )
                )
                continue
            raw = {
                k: feas[k]
                for k in ("weights_gb", "kv_cache_gb", "overhead_gb", "vram_total_gb", "fits")
            }
            weights = feas["weights_gb"] * c.GiB
            kv = feas["kv_cache_gb"] * c.GiB
            note = (
                "its *_gb are GiB (BYTES_TO_GIB); KV includes its 1.15 fragmentation "
                "factor; total = weights + KV + overhead (max(1 GiB, 2% of the 24 GB "
                "RTX 4090 used for --gpu))"
            )
            if prec == "q4_k_m":
                note = "closest 4-bit option --quantization awq (0.55 B/param); " + note
            out.append(
                case(
                    spec["name"],
                    ctx,
                    prec,
                    tool,
                    kv=kv,
                    weights=weights,
                    total=weights + kv + feas["overhead_gb"] * c.GiB,
                    note=note,
                    raw=raw,
                )
            )
    return out


def run_accelerate(configs: dict[str, dict[str, Path]]) -> list[dict[str, Any]]:
    """accelerate's estimate-memory code (gather_data) on the official configs."""
    reqs = [{"model": s["name"], "path": str(configs[s["name"]]["official"])} for s in c.specs()]
    res = c.run_driver(
        "accelerate",
        "accelerate_driver.py",
        {"cases": reqs, "dtypes": ["float32", "float16", "int8", "int4"]},
    )
    by_model = {r["model"]: r for r in res}
    out = []
    for spec, ctx, prec in grid():
        r = by_model[spec["name"]]
        if "error" in r:
            out.append(case(spec["name"], ctx, prec, "accelerate", note=r["error"]))
            continue
        row = next(x for x in r["rows"] if x[0] == ACCEL_DTYPE[prec])
        out.append(
            case(
                spec["name"],
                ctx,
                prec,
                "accelerate",
                weights=row[2],
                total=row[2],
                note=f"'{ACCEL_DTYPE[prec]}' row; AutoModel (no LM head) params x "
                "dtype bytes; no KV, no context, no runtime term",
                raw={"dtype": row[0], "largest_layer_bytes": row[1], "total_size_bytes": row[2]},
            )
        )
    return out


def cli_failures(configs: dict[str, dict[str, Path]]) -> dict[str, str]:
    """What the real Hub-bound CLIs say offline (hf-mem, accelerate estimate-memory)."""
    hf = c.run_cmd(
        [
            str(c.venv_bin("hf-mem")),
            "--model-id",
            "Qwen/Qwen3.5-9B",
            "--experimental",
            "--json-output",
        ],
        timeout=120,
    )
    acc = c.run_cmd(
        [str(c.venv_bin("accelerate")), "estimate-memory", "Qwen/Qwen3.5-9B"],
        env={"HF_HUB_OFFLINE": "0"},
        timeout=180,
    )
    return {
        "hf-mem": f"rc {hf['rc']}: {c.short_error(hf)}",
        "accelerate": f"rc {acc['rc']}: {c.short_error(acc)}",
    }


def main() -> None:
    """Run every peer over the grid and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=c.RESULTS_DIR / "peers_estimates.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="qwenfit-peers-") as tmp:
        tmp_path = Path(tmp)
        configs = c.write_configs(tmp_path / "configs")
        offline = cli_failures(configs)
        cases = []
        cases += run_llmfit()
        cases += run_whichllm(tmp_path / "xdg-cache")
        cases += run_hfmem(configs)
        cases += run_vllm_wizard(configs)
        cases += run_accelerate(configs)
    tools = {
        "llmfit": {
            "version": c.tool_version("llmfit"),
            "method": "CLI: llmfit plan Qwen/Qwen3.5-<size> --context N --quant "
            "BF16|Q4_K_M --json --no-dashboard (embedded catalog entry); KV "
            "from kv_alternatives[fp16]",
        },
        "whichllm": {
            "version": c.tool_version("whichllm"),
            "method": "cache seeded offline from Hub-style records via its own parser "
            "(models.parser._parse_model); estimate = engine.vram functions "
            "exactly as `whichllm plan` (checked equal to its --json total)",
        },
        "hf-mem": {
            "version": c.tool_version("hf-mem"),
            "method": "hf_mem.run(model_id, experimental=True, max_model_len=N) with "
            "httpx2 MockTransport serving the official nested config.json and "
            "a safetensors header of the exact BF16 checkpoint bytes; CLI "
            "offline: " + offline["hf-mem"],
        },
        "hf-mem-gguf": {
            "version": c.tool_version("hf-mem"),
            "method": "same, GGUF path: gguf_file=<local GGUF> (headers of "
            "benchmarks/llamacpp/make_gguf.py files served by range "
            "reads)",
        },
        "vllm-wizard": {
            "version": c.tool_version("vllm-wizard"),
            "method": "CLI: vllm-wizard plan --model <dir with text_config "
            "flattened to top level> --max-model-len N --concurrency 1 "
            "--gpu 'RTX 4090' --dtype bf16|--quantization awq --json",
        },
        "vllm-wizard-official": {
            "version": c.tool_version("vllm-wizard"),
            "method": "same with the official nested config.json",
        },
        "vllm-wizard-params-b": {
            "version": c.tool_version("vllm-wizard"),
            "method": "same with --model Qwen/Qwen3.5-<size> --params-b "
            "<Hub total params / 1e9> (no config read)",
        },
        "accelerate": {
            "version": c.tool_version("accelerate"),
            "method": "accelerate.commands.estimate.gather_data on the official "
            "config folder, verify_on_hub stubbed (transformers "
            "5.23.0, torch 2.13.0 CPU); CLI offline: " + offline["accelerate"],
        },
    }
    c.write_json(
        args.out,
        {
            "generator": "benchmarks/peers/accuracy_peers.py",
            "units": "bytes; raw = the tool's own numbers and units",
            "contexts": list(c.CONTEXTS),
            "precisions": {
                "bf16": "BF16 weights, f16/bf16 KV",
                "q4_k_m": "Q4_K_M or the tool's nearest 4-bit option (see note)",
            },
            "tools": tools,
            "cases": cases,
        },
    )
    print(f"wrote {args.out} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
