"""Append the Qwen3.6 / Qwen3.8 rows on the Qwen3.5 architecture to data/model_specs.json.

Each new model has exactly the shapes of a Qwen3.5 model (config diff: only
`transformers_version` and `quantization_config` differ; see docs/estimation.md, "Newer
release lines"), so its architecture, parameter counts and per-precision tensor bytes are
those of that model; only names, repos, dates and sources change. The text is edited in place
(new rows before the closing `]` of `models`, new sources after the last source) so the rest
of the file keeps its formatting. Idempotent: rows already present are skipped.

    python benchmarks/spec_table/add_newer_rows.py
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

SPECS = Path(__file__).resolve().parents[2] / "data/model_specs.json"

SOURCES = {
    "qwen38-readme": {
        "title": "QwenLM/Qwen3.8 README (formerly QwenLM/Qwen3.6): release news of Qwen3.6-35B-A3B "
        "(2026-04-16), Qwen3.6-27B (2026-04-22), Qwen3.8-27B (2026-08-14)",
        "url": "https://github.com/QwenLM/Qwen3.8",
    },
    "config-qwen36-27b": {
        "title": "Qwen/Qwen3.6-27B config.json: qwen3_5 / Qwen3_5ForConditionalGeneration, "
        "every text_config and vision_config field equal to Qwen/Qwen3.5-27B's",
        "url": "https://huggingface.co/Qwen/Qwen3.6-27B/blob/main/config.json",
        "note": "model card: 64 layers, 16 x (3 x Gated DeltaNet + 1 x Gated Attention), "
        "V 48 / QK 16 "
        "linear heads, 24 Q / 4 KV heads x 256, FFN 17408, vocab 248320, 262,144 native / "
        "1,010,000 with YaRN",
    },
    "config-qwen36-35b-a3b": {
        "title": "Qwen/Qwen3.6-35B-A3B config.json: qwen3_5_moe, same fields as "
        "Qwen/Qwen3.5-35B-A3B "
        "(256 experts, 8 routed + 1 shared, 40 layers)",
        "url": "https://huggingface.co/Qwen/Qwen3.6-35B-A3B/blob/main/config.json",
        "note": "vLLM recipe models/Qwen/Qwen3.6-35B-A3B.yaml: 'same gated-delta-networks MoE "
        "architecture' as Qwen3.5-35B-A3B",
    },
    "config-qwen38-27b": {
        "title": "Qwen/Qwen3.8-27B config.json: qwen3_5 / Qwen3_5ForConditionalGeneration, "
        "same fields as Qwen3.6-27B (transformers_version 5.8.0)",
        "url": "https://huggingface.co/Qwen/Qwen3.8-27B/blob/main/config.json",
        "note": "vLLM recipe models/Qwen/Qwen3.8-27B.yaml (github.com/vllm-project/recipes): 16 of "
        "64 layers full attention, vision tower, text_config.mtp_num_hidden_layers 1, "
        "55,563,006,776 B BF16 on disk, FP8 30,866,866,928 B (block [128, 128])",
    },
    "params-same-shape": {
        "title": "Parameter counts equal to the Qwen3.5 model with the same config (counted with "
        "transformers 5.23.0's classes on the meta device, "
        "benchmarks/transformers/param_counts.py)",
        "path": "tests/fixtures/measured/transformers_params.json",
        "note": "the configs differ only in transformers_version / quantization_config, which "
        "do not change any module shape; Qwen3.8-27B's published total 27,781,427,952 equals "
        "Qwen3.5-27B's count",
    },
    "card-qwen36-27b": {
        "title": "Qwen/Qwen3.6-27B model card (262,144 native, 1,010,000 tokens with YaRN)",
        "url": "https://huggingface.co/Qwen/Qwen3.6-27B",
    },
    "card-qwen36-35b-a3b": {
        "title": "Qwen/Qwen3.6-35B-A3B model card (262,144 native, 1,010,000 tokens with YaRN)",
        "url": "https://huggingface.co/Qwen/Qwen3.6-35B-A3B",
    },
    "card-qwen38-27b": {
        "title": "Qwen/Qwen3.8-27B model card and vLLM recipe (262,144 native; 1M with "
        "--hf-overrides)",
        "url": "https://huggingface.co/Qwen/Qwen3.8-27B",
    },
    "fp8-recipe-qwen38-27b": {
        "title": "Qwen/Qwen3.8-27B-FP8 size from the vLLM recipe (30,866,866,928 B on disk); "
        "tensor bytes computed as for Qwen3.5-27B-FP8",
        "url": "https://github.com/vllm-project/recipes/blob/main/models/Qwen/Qwen3.8-27B.yaml",
        "path": "benchmarks/spec_table/quantized_sizes.py",
    },
    "ollama-library-qwen36": {
        "title": "Ollama library page for qwen3.6 (tags qwen3.6:27b, qwen3.6:35b-a3b)",
        "url": "https://ollama.com/library/qwen3.6",
        "note": "bytes are llama.cpp's Q4_K_M tensor bytes (Ollama's default quant for these "
        "tags); the page's own sizes were not read",
    },
    "ollama-library-qwen38": {
        "title": "Ollama library page for qwen3.8 (tag qwen3.8:27b)",
        "url": "https://ollama.com/library/qwen3.8",
        "note": "bytes are llama.cpp's Q4_K_M tensor bytes; the page's own sizes were not read",
    },
}

# (new name, family, display, hf repo, released, Qwen3.5 twin, arch/params/context sources,
#  GGUF repo, GGUF repo with the MTP block, Ollama tag, Ollama source, FP8 download bytes)
ROWS = [
    (
        "qwen3.6-35b-a3b",
        "qwen3.6",
        "Qwen3.6-35B-A3B",
        "Qwen/Qwen3.6-35B-A3B",
        "2026-04-16",
        "qwen3.5-35b-a3b",
        "config-qwen36-35b-a3b",
        "card-qwen36-35b-a3b",
        "unsloth/Qwen3.6-35B-A3B-GGUF",
        "unsloth/Qwen3.6-35B-A3B-MTP-GGUF",
        "qwen3.6:35b-a3b",
        "ollama-library-qwen36",
        None,
        "quantized-recipes",
    ),
    (
        "qwen3.6-27b",
        "qwen3.6",
        "Qwen3.6-27B",
        "Qwen/Qwen3.6-27B",
        "2026-04-22",
        "qwen3.5-27b",
        "config-qwen36-27b",
        "card-qwen36-27b",
        "unsloth/Qwen3.6-27B-GGUF",
        "unsloth/Qwen3.6-27B-MTP-GGUF",
        "qwen3.6:27b",
        "ollama-library-qwen36",
        None,
        "quantized-recipes",
    ),
    (
        "qwen3.8-27b",
        "qwen3.8",
        "Qwen3.8-27B",
        "Qwen/Qwen3.8-27B",
        "2026-08-14",
        "qwen3.5-27b",
        "config-qwen38-27b",
        "card-qwen38-27b",
        "unsloth/Qwen3.8-27B-GGUF",
        None,
        "qwen3.8:27b",
        "ollama-library-qwen38",
        30866866928,
        "fp8-recipe-qwen38-27b",
    ),
]


def _new_row(twin: dict, r: tuple) -> dict:
    (
        name,
        family,
        display,
        repo,
        released,
        _twin,
        arch_src,
        ctx_src,
        gguf_repo,
        mtp_repo,
        tag,
        ollama_src,
        fp8_download,
        fp8_src,
    ) = r
    row = {
        "name": name,
        "family": family,
        "display_name": display,
        "hf_repo": repo,
        "model_type": twin["model_type"],
        "transformers_class": twin["transformers_class"],
        "released": released,
        "aliases": [],
        "architecture": {**copy.deepcopy(twin["architecture"]), "source": arch_src},
        "params": {**copy.deepcopy(twin["params"]), "source": "params-same-shape"},
        "context": {**copy.deepcopy(twin["context"]), "source": ctx_src},
        "artifacts": [],
    }
    q4 = None
    for a in twin["artifacts"]:
        b = copy.deepcopy(a)
        if a["format"] == "safetensors" and a["precision"] == "bf16":
            b["repo"] = repo
        elif a["format"] == "safetensors":
            b["repo"] = f"{repo}-{'FP8' if a['precision'] == 'fp8' else 'GPTQ-Int4'}"
            if a["precision"] != "fp8":
                continue  # no GPTQ-Int4 build of the newer releases is used here
            b["source"] = fp8_src
            b["download_bytes"] = fp8_download
        elif a["format"] == "gguf":
            b["repo"] = gguf_repo
            b["mtp_bytes"] = None  # filled from llamacpp_mtp_sizes.json
            if mtp_repo:
                b["mtp_repo"] = mtp_repo
            if a["precision"] == "q4_k_m":
                q4 = b
        else:
            continue  # Ollama: one tag, added below
        row["artifacts"].append(b)
    assert q4 is not None
    row["artifacts"].append(
        {
            "precision": "q4_k_m",
            "format": "ollama",
            "tag": tag,
            "text_bytes": q4["text_bytes"],
            "vision_bytes": q4["vision_bytes"],
            "mtp_bytes": None,
            "download_bytes": None,
            "exact": False,
            "source": ollama_src,
        }
    )
    return row


def _indent(obj: object, level: int) -> str:
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    pad = " " * level
    return "\n".join(pad + ln for ln in text.splitlines())


def main() -> int:
    text = SPECS.read_text(encoding="utf-8")
    doc = json.loads(text)
    have = {m["name"] for m in doc["models"]}
    by_name = {m["name"]: m for m in doc["models"]}
    mtp = json.loads(
        (SPECS.parent.parent / "tests/fixtures/measured/llamacpp_mtp_sizes.json").read_text()
    )["models"]
    rows = []
    for r in ROWS:
        if r[0] in have:
            continue
        row = _new_row(by_name[r[5]], r)
        sizes = mtp[r[5]]  # the twin's: same shapes, same llama-quantize choices
        blocks = {**sizes["mtp_block_bytes"], "bf16": sizes["bf16_mtp_block_bytes"]}
        for a in row["artifacts"]:
            if a["format"] == "gguf":
                a["mtp_bytes"] = blocks[a["precision"]]
        rows.append(row)
    new_sources = {k: v for k, v in SOURCES.items() if k not in doc["sources"]}
    if new_sources:
        end = text.index('\n  },\n  "precisions"')
        body = ",\n".join(
            f"    {json.dumps(k)}: " + _indent(v, 4).lstrip() for k, v in new_sources.items()
        )
        text = text[:end] + ",\n" + body + text[end:]
    if rows:
        end = text.rindex("\n  ]\n}")
        body = ",\n".join(_indent(r, 4) for r in rows)
        text = text[:end] + ",\n" + body + text[end:]
    json.loads(text)
    SPECS.write_text(text, encoding="utf-8")
    print(f"added {len(rows)} rows, {len(new_sources)} sources")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
