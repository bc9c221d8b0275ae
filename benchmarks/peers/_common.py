"""Shared helpers for the peer-tool benchmarks: paths, specs, local configs, subprocess calls.

Everything here runs offline. Peer tools live in their own venvs under PEERS_DIR (built by
setup.sh); the scripts in this folder run under any Python >= 3.10 and talk to the peers
through their CLIs or through the small drivers in drivers/, which run inside a peer's venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
SPECS_PATH = REPO_ROOT / "data" / "model_specs.json"
DRIVERS = HERE / "drivers"
PEERS_DIR = Path(os.environ.get("QWENFIT_PEERS_DIR", "/work/rigs/peers"))
GGUF_DIR = Path(os.environ.get("QWENFIT_GGUF_DIR", "/work/rigs/llamacpp/gguf"))
QWENFIT_VENV = Path(os.environ.get("QWENFIT_VENV", REPO_ROOT / ".venv"))

sys.path.insert(0, str(REPO_ROOT / "benchmarks" / "transformers"))
from hf_config import (  # noqa: E402
    is_moe,
    load_specs,
    text_config_kwargs,
    vision_config_kwargs,
)

GiB = 1024**3
CONTEXTS = (4096, 32768, 131072, 262144)
PRECISIONS = ("bf16", "q4_k_m")
# Qwen3.5 special token ids of the published config.json files (not memory-relevant).
TOKEN_IDS = {
    "image_token_id": 248056,
    "video_token_id": 248057,
    "vision_start_token_id": 248053,
    "vision_end_token_id": 248054,
}


def venv_python(tool: str) -> Path:
    """Python of a peer's venv (tool = llmfit, whichllm, hf-mem, vllm-wizard, accelerate)."""
    return PEERS_DIR / f"venv-{tool}" / "bin" / "python"


def venv_bin(tool: str, name: str | None = None) -> Path:
    """An entry-point script of a peer's venv."""
    return PEERS_DIR / f"venv-{tool}" / "bin" / (name or tool)


def specs() -> list[dict[str, Any]]:
    """The eight models of data/model_specs.json, in table order."""
    return load_specs(SPECS_PATH)


def artifact(spec: dict[str, Any], precision: str, fmt: str) -> dict[str, Any] | None:
    """The spec table's artifact of one precision and format, or None."""
    for art in spec["artifacts"]:
        if art["precision"] == precision and art["format"] == fmt:
            return art
    return None


def official_config(spec: dict[str, Any]) -> dict[str, Any]:
    """config.json in the official Hub layout (nested text_config / vision_config)."""
    moe = is_moe(spec)
    text = text_config_kwargs(spec)
    text["model_type"] = "qwen3_5_moe_text" if moe else "qwen3_5_text"
    text["full_attention_interval"] = spec["architecture"]["full_attention_interval"]
    text["mtp_num_hidden_layers"] = spec["architecture"]["mtp_num_hidden_layers"]
    text["attn_output_gate"] = True
    text["mamba_ssm_dtype"] = "float32"
    text["hidden_act"] = "silu"
    text["rms_norm_eps"] = 1e-6
    text["dtype"] = "bfloat16"
    vision = vision_config_kwargs(spec)
    vision["model_type"] = "qwen3_5_moe" if moe else "qwen3_5"
    arch = "Qwen3_5MoeForConditionalGeneration" if moe else "Qwen3_5ForConditionalGeneration"
    return {
        "architectures": [arch],
        "model_type": spec["model_type"],
        "text_config": text,
        "vision_config": vision,
        "tie_word_embeddings": spec["architecture"]["tie_word_embeddings"],
        **TOKEN_IDS,
        "transformers_version": "5.23.0",
    }


def flat_config(spec: dict[str, Any]) -> dict[str, Any]:
    """The same numbers with text_config lifted to the top level (text-only layout)."""
    cfg = official_config(spec)
    flat = dict(cfg["text_config"])
    flat["architectures"] = [
        cfg["architectures"][0].replace("ForConditionalGeneration", "ForCausalLM")
    ]
    flat["torch_dtype"] = "bfloat16"
    return flat


def write_configs(root: Path) -> dict[str, dict[str, Path]]:
    """Write official/ and flat/ config.json per model under root; return their folders."""
    out: dict[str, dict[str, Path]] = {}
    for spec in specs():
        paths = {}
        for layout, build in (("official", official_config), ("flat", flat_config)):
            folder = root / layout / spec["name"]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "config.json").write_text(json.dumps(build(spec), indent=2) + "\n")
            paths[layout] = folder
        out[spec["name"]] = paths
    return out


def run_cmd(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 300,
) -> dict[str, Any]:
    """Run a command; return rc, stdout, stderr (loader warnings dropped) and seconds."""
    full_env = dict(os.environ)
    full_env.update({"COLUMNS": "10000", "NO_COLOR": "1", "TERM": "dumb"})
    full_env.update(env or {})
    start = time.perf_counter()
    proc = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    stderr = "\n".join(line for line in proc.stderr.splitlines() if "GLIBC_2.39" not in line)
    return {
        "rc": proc.returncode,
        "stdout": proc.stdout,
        "stderr": stderr,
        "seconds": time.perf_counter() - start,
    }


def run_driver(
    tool: str,
    driver: str,
    request: dict[str, Any],
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> Any:
    """Run drivers/<driver> in a peer's venv with a JSON request on stdin; parse its JSON."""
    res = run_cmd(
        [str(venv_python(tool)), str(DRIVERS / driver)],
        env=env,
        stdin=json.dumps(request),
        timeout=timeout,
    )
    if res["rc"] != 0:
        raise RuntimeError(f"{driver} failed (rc {res['rc']}): {res['stderr'][-2000:]}")
    return json.loads(res["stdout"])


def tool_version(tool: str) -> str | None:
    """Installed version of a peer's distribution (pip metadata in its venv)."""
    dist = {"hf-mem": "hf-mem", "vllm-wizard": "vllm-wizard"}.get(tool, tool)
    res = run_cmd(
        [
            str(venv_python(tool)),
            "-c",
            f"import importlib.metadata as m; print(m.version({dist!r}))",
        ]
    )
    return res["stdout"].strip() or None


def short_error(res: dict[str, Any], limit: int = 300) -> str:
    """Last meaningful line(s) of a failed command, for a case's note."""
    text = (res.get("stderr") or "") + "\n" + (res.get("stdout") or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-3:])[-limit:]


def write_json(path: Path, data: Any) -> None:
    """Write JSON with a trailing newline, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")


def whichllm_hub_records() -> list[dict[str, Any]]:
    """Hugging Face API-style records for the 8 base repos and their unsloth GGUF repos.

    whichllm has no offline catalog: it fetches these records from the Hub and caches the
    parsed result for 6 h. We build the records from the spec table (Hub parameter counts =
    safetensors totals incl. vision and MTP; GGUF files = the table's text-tower GGUF sizes)
    and let whichllm's own parser turn them into its cache. GGUF repos list quant files only:
    the mmproj-*.gguf siblings of the real repos are left out (whichllm would read them as
    "F16"/"BF16" model variants, a known bug, and the picks would be about projectors).
    """
    records = []
    for spec in specs():
        repo = spec["hf_repo"]
        arch = (
            "Qwen3_5MoeForConditionalGeneration"
            if is_moe(spec)
            else ("Qwen3_5ForConditionalGeneration")
        )
        total = spec["params"]["total"]
        records.append(
            {
                "id": repo,
                "config": {"architectures": [arch], "model_type": spec["model_type"]},
                "safetensors": {"total": total, "parameters": {"BF16": total}},
                "cardData": {"license": "apache-2.0", "pipeline_tag": "image-text-to-text"},
                "tags": [
                    "transformers",
                    "safetensors",
                    spec["model_type"],
                    "image-text-to-text",
                    "conversational",
                    "license:apache-2.0",
                ],
                "pipeline_tag": "image-text-to-text",
                "library_name": "transformers",
                "downloads": 1_000_000,
                "likes": 1000,
                "createdAt": spec["released"] + "T00:00:00.000Z",
                "siblings": [{"rfilename": "config.json", "size": 4000}],
            }
        )
        arts = [a for a in spec["artifacts"] if a["format"] == "gguf"]
        if not arts:
            continue
        stem = spec["display_name"]
        records.append(
            {
                "id": arts[0]["repo"],
                "config": {},
                "gguf": {
                    "architecture": "qwen35moe" if is_moe(spec) else "qwen35",
                    "context_length": spec["context"]["native"],
                    "total": spec["params"]["text"],
                },
                "cardData": {"license": "apache-2.0", "base_model": repo},
                "tags": [
                    "gguf",
                    f"base_model:{repo}",
                    f"base_model:quantized:{repo}",
                    "license:apache-2.0",
                    "image-text-to-text",
                ],
                "pipeline_tag": "image-text-to-text",
                "downloads": 1_000_000,
                "likes": 1000,
                "createdAt": spec["released"] + "T00:00:00.000Z",
                "siblings": [
                    {"rfilename": f"{stem}-{a['precision'].upper()}.gguf", "size": a["text_bytes"]}
                    for a in arts
                ],
            }
        )
    return records


def seed_whichllm_cache(cache_home: Path) -> Path:
    """Write whichllm's models.json under cache_home (use as XDG_CACHE_HOME); return it."""
    req = {"mode": "seed", "records": whichllm_hub_records()}
    out = run_driver("whichllm", "whichllm_driver.py", req, env={"XDG_CACHE_HOME": str(cache_home)})
    return Path(out["cache_file"])
