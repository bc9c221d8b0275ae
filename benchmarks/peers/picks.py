"""What each peer recommends among the Qwen3.5 models for hypothetical machines.

Writes benchmarks/results/peers_picks.json. Peers with hypothetical-hardware input:
llmfit (--memory/--ram or a --profile file), whichllm (--gpu/--vram/--cpu-only/--ram-budget,
model cache seeded offline with the eight Qwen3.5 repos), vllm-wizard (--gpu/--vram-gb/--gpus;
it sizes one given model and picks none, so we record its fit verdict per model). hf-mem and
accelerate take no hardware. Offline. Run: python benchmarks/peers/picks.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import _common as c

# name -> description, llmfit flags, whichllm flags, vllm-wizard flags (None = cannot express)
MACHINES: list[dict[str, Any]] = [
    {
        "id": "cpu-16gb",
        "desc": "CPU only, 16 GB RAM",
        "llmfit": ["--ram", "16G"],
        "whichllm": ["--cpu-only", "--ram-budget", "16GB"],
        "vllm_wizard": None,
    },
    {
        "id": "gpu-8gb",
        "desc": "1 GPU 8 GB (RTX 4060), 32 GB RAM",
        "llmfit": ["--memory", "8G", "--ram", "32G"],
        "whichllm": ["--gpu", "RTX 4060", "--ram-budget", "32GB"],
        "vllm_wizard": ["--gpu", "RTX 4060", "--vram-gb", "8"],
    },
    {
        "id": "gpu-12gb",
        "desc": "1 GPU 12 GB (RTX 3060 12GB), 32 GB RAM; whichllm resolves "
        "'RTX 3060' to the 8 GB card, hence --vram 12",
        "llmfit": ["--memory", "12G", "--ram", "32G"],
        "whichllm": ["--gpu", "RTX 3060", "--vram", "12", "--ram-budget", "32GB"],
        "vllm_wizard": ["--gpu", "RTX 3060", "--vram-gb", "12"],
    },
    {
        "id": "gpu-16gb",
        "desc": "1 GPU 16 GB (RTX 4080), 32 GB RAM",
        "llmfit": ["--memory", "16G", "--ram", "32G"],
        "whichllm": ["--gpu", "RTX 4080", "--ram-budget", "32GB"],
        "vllm_wizard": ["--gpu", "RTX 4080", "--vram-gb", "16"],
    },
    {
        "id": "gpu-24gb",
        "desc": "1 GPU 24 GB (RTX 4090), 64 GB RAM",
        "llmfit": ["--memory", "24G", "--ram", "64G"],
        "whichllm": ["--gpu", "RTX 4090", "--ram-budget", "64GB"],
        "vllm_wizard": ["--gpu", "RTX 4090", "--vram-gb", "24"],
    },
    {
        "id": "gpu-48gb",
        "desc": "1 GPU 48 GB (L40S), 128 GB RAM",
        "llmfit": ["--memory", "48G", "--ram", "128G"],
        "whichllm": ["--gpu", "L40S", "--ram-budget", "128GB"],
        "vllm_wizard": ["--gpu", "L40S", "--vram-gb", "48"],
    },
    {
        "id": "gpu-80gb",
        "desc": "1 GPU 80 GB (H100), 256 GB RAM",
        "llmfit": ["--memory", "80G", "--ram", "256G"],
        "whichllm": ["--gpu", "H100", "--ram-budget", "256GB"],
        "vllm_wizard": ["--gpu", "H100", "--vram-gb", "80"],
    },
    {
        "id": "2x-gpu-24gb",
        "desc": "2 GPUs 24 GB each (2x RTX 4090), 128 GB RAM",
        "llmfit": ["--memory", "48G", "--ram", "128G"],
        "llmfit_note": "llmfit has no GPU-count override; 48G pooled as one device",
        "whichllm": ["--gpu", "2x RTX 4090", "--ram-budget", "128GB"],
        "vllm_wizard": [
            "--gpu",
            "RTX 4090",
            "--vram-gb",
            "24",
            "--gpus",
            "2",
            "--tensor-parallel-size",
            "2",
        ],
    },
    {
        "id": "apple-36gb",
        "desc": "Apple M3 Max, 36 GB unified memory",
        "llmfit": "profile",
        "whichllm": ["--gpu", "M3 Max", "--vram", "36"],
        "vllm_wizard": None,
    },
]
APPLE_PROFILE = {
    "schema_version": 1,
    "name": "apple-m3-max-36gb",
    "match": {"gpu_name_contains": "Apple M3 Max"},
    "hardware": {
        "total_ram_gb": 36.0,
        "unified_memory": True,
        "gpu_memory_bandwidth_gbps": 300.0,
        "ddr_bandwidth_gbps": 300.0,
    },
}
BASE_REPOS = {s["hf_repo"]: s["name"] for s in c.specs()}
VW_CONTEXT = 32768


def llmfit_picks(machine: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """`llmfit [hw flags] recommend -n 100000 --json`: its top Qwen3.5 entries and overall #1."""
    flags = machine["llmfit"]
    if flags == "profile":
        prof = tmp / "apple-m3-max-36gb.json"
        prof.write_text(json.dumps(APPLE_PROFILE))
        flags = ["--profile", str(prof)]
    argv = [
        str(c.venv_bin("llmfit")),
        *flags,
        "recommend",
        "-n",
        "100000",
        "--json",
        "--no-dashboard",
    ]
    res = c.run_cmd(argv)
    rec: dict[str, Any] = {"command": "llmfit " + " ".join(argv[1:]).replace(str(tmp), "$TMP")}
    if machine.get("llmfit_note"):
        rec["note"] = machine["llmfit_note"]
    if res["rc"] != 0:
        rec["error"] = c.short_error(res)
        return rec
    models = json.loads(res["stdout"])["models"]

    def brief(i: int, m: dict[str, Any]) -> dict[str, Any]:
        return {
            "rank": i + 1,
            "name": m["name"],
            "quant": m.get("best_quant"),
            "context": m.get("effective_context_length"),
            "fit": m.get("fit_level"),
            "run_mode": m.get("run_mode"),
            "memory_required_gb": m.get("memory_required_gb"),
            "estimated_tps": m.get("estimated_tps"),
            "score": m.get("score"),
        }

    qwen = [brief(i, m) for i, m in enumerate(models) if m["name"] in BASE_REPOS]
    rec["catalog_entries_ranked"] = len(models)
    rec["overall_top"] = brief(0, models[0]) if models else None
    rec["pick"] = {**qwen[0], "model": BASE_REPOS[qwen[0]["name"]]} if qwen else None
    rec["qwen35_ranked"] = qwen
    return rec


def whichllm_picks(machine: dict[str, Any], cache_home: Path) -> dict[str, Any]:
    """`whichllm [hw flags] --json -n 8` on a cache holding only the Qwen3.5 repos."""
    argv = [str(c.venv_bin("whichllm")), *machine["whichllm"], "--json", "-n", "8"]
    res = c.run_cmd(argv, env={"XDG_CACHE_HOME": str(cache_home)})
    rec: dict[str, Any] = {"command": "whichllm " + " ".join(argv[1:])}
    try:
        data = json.loads(res["stdout"][res["stdout"].index("{") :], strict=False)
    except ValueError:
        rec["error"] = f"rc {res['rc']}: {c.short_error(res)}"
        return rec
    ranked = [
        {
            "rank": m["rank"],
            "name": m["model_id"],
            "artifact": m.get("artifact_filename"),
            "quant": m.get("quant_type"),
            "fit": m.get("fit_type"),
            "vram_required_bytes": m.get("vram_required_bytes"),
            "estimated_tok_per_sec": m.get("estimated_tok_per_sec"),
            "warnings": m.get("warnings"),
        }
        for m in data.get("models", [])
    ]
    rec["hardware_seen"] = data.get("hardware")
    rec["context"] = 4096
    top = ranked[0] if ranked else None
    rec["pick"] = (
        {**top, "model": BASE_REPOS.get(top["name"], top["name"]), "context": 4096} if top else None
    )
    rec["ranked"] = ranked
    return rec


def vllm_wizard_verdicts(
    machine: dict[str, Any], configs: dict[str, dict[str, Path]]
) -> dict[str, Any]:
    """`vllm-wizard plan` per model (flattened config, BF16, 32k): fits or not."""
    flags = machine["vllm_wizard"]
    if flags is None:
        return {
            "error": "cannot express this machine: vllm-wizard models NVIDIA GPUs only "
            "(`--gpu`/`--vram-gb`), no CPU-only or Apple target"
        }
    verdicts = []
    for spec in c.specs():
        argv = [
            str(c.venv_bin("vllm-wizard")),
            "plan",
            "--model",
            str(configs[spec["name"]]["flat"]),
            "--max-model-len",
            str(VW_CONTEXT),
            "--dtype",
            "bf16",
            *flags,
            "--json",
        ]
        res = c.run_cmd(argv)
        try:
            out = json.loads(res["stdout"], strict=False)
        except json.JSONDecodeError:
            verdicts.append({"model": spec["name"], "error": c.short_error(res)})
            continue
        feas, cfg = out["feasibility"], out["config"]
        verdicts.append(
            {
                "model": spec["name"],
                "fits": feas["fits"],
                "oom_risk": feas["oom_risk"],
                "weights_gib": feas["weights_gb"],
                "kv_cache_gib": feas["kv_cache_gb"],
                "emitted_config": {
                    k: cfg.get(k)
                    for k in (
                        "quantization",
                        "kv_cache_dtype",
                        "max_model_len",
                        "max_num_seqs",
                        "tensor_parallel_size",
                    )
                },
            }
        )
    fitting = [v for v in verdicts if v.get("fits")]
    return {
        "command": "vllm-wizard plan --model <flat config dir> --max-model-len "
        f"{VW_CONTEXT} --dtype bf16 " + " ".join(flags) + " --json (per model)",
        "note": "vllm-wizard picks no model; 'pick' = the largest model it says fits (our "
        "derivation), with the config it would emit",
        "pick": (
            {
                "model": fitting[-1]["model"],
                "quant": "bf16",
                "context": VW_CONTEXT,
                "emitted_config": fitting[-1]["emitted_config"],
            }
            if fitting
            else None
        ),
        "verdicts": verdicts,
    }


def main() -> None:
    """Ask every peer about every machine and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=c.RESULTS_DIR / "peers_picks.json")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="qwenfit-picks-") as tmp:
        tmp_path = Path(tmp)
        configs = c.write_configs(tmp_path / "configs")
        cache_home = tmp_path / "xdg-cache"
        c.seed_whichllm_cache(cache_home)
        for machine in MACHINES:
            print("machine", machine["id"], flush=True)
            results.append(
                {
                    "machine": machine["id"],
                    "description": machine["desc"],
                    "llmfit": llmfit_picks(machine, tmp_path),
                    "whichllm": whichllm_picks(machine, cache_home),
                    "vllm-wizard": vllm_wizard_verdicts(machine, configs),
                    "hf-mem": {"error": "no hardware input: sizes a Hub repo only"},
                    "accelerate": {
                        "error": "no hardware input: `estimate-memory` sizes a model only"
                    },
                }
            )
    c.write_json(
        args.out,
        {
            "generator": "benchmarks/peers/picks.py",
            "versions": {t: c.tool_version(t) for t in ("llmfit", "whichllm", "vllm-wizard")},
            "notes": [
                "llmfit ranks its whole embedded catalog (~16k entries); 'pick' is its best-ranked "
                "entry among the eight official Qwen/Qwen3.5-<size> repos, 'overall_top' its #1",
                "whichllm's cache holds only the eight Qwen3.5 base repos + their unsloth GGUF "
                "repos (seeded offline, no mmproj files), so its #1 is its Qwen3.5 pick; default "
                "context 4096; its leaderboard fetches fail offline and it uses its fallbacks",
                "vllm-wizard: BF16 at 32k context, flattened config (the official nested one "
                "fails)",
            ],
            "machines": results,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
