"""Append the MLX runtime, the mlx-community precisions and their artifacts to the spec table.

Bytes are computed from the conversion recipe (`mlx_lm.convert -q`: group size 64, a bfloat16
scale and bias per group, MoE router gates at 8 bits, norms / conv / dt_bias bfloat16, A_log
float32) by `qwenfit.memory.mlx`, the same arithmetic the estimator uses; the repos' own file
listings were not read, so every row is marked `exact: false`. Download bytes add the vision
tower in bfloat16 (the conversions are made with mlx-vlm and keep it) and leave the MTP block
out (dropped by the converter's `sanitize`).

Idempotent; the table keeps its formatting (json indent 2, no trailing newline), so the diff is
the appended rows only: `python benchmarks/spec_table/mlx_rows.py && git diff --stat data/`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from qwenfit.memory import mlx  # noqa: E402
from qwenfit.specs.table import SpecTable  # noqa: E402

TABLE = ROOT / "data" / "model_specs.json"
SUFFIX = {"mlx-4bit": "4bit", "mlx-6bit": "6bit", "mlx-8bit": "8bit", "bf16": "bf16"}

SOURCES = {
    "mlx-runtime": {
        "title": "mlx-lm 0.32.2 models/qwen3_5.py, qwen3_5_moe.py, cache.py; mlx_lm.server --help",
        "url": "https://github.com/ml-explore/mlx-lm/tree/main/mlx_lm/models",
        "path": "tests/fixtures/runtime_help/mlx_lm-server.txt",
        "note": "KV cache types: bf16 (the model dtype) or --kv-bits 8 / 4 (group 64)",
    },
    "mlx-conversions": {
        "title": "mlx-community conversions of Qwen3.5 (mlx_lm.convert -q, group size 64): "
        "bytes computed from the recipe by qwenfit.memory.mlx",
        "url": "https://huggingface.co/mlx-community",
        "path": "benchmarks/spec_table/mlx_rows.py",
        "note": "repo names follow mlx-community's <Model>-<bits>bit / -bf16 pattern "
        "(e.g. mlx-community/Qwen3.5-9B-4bit, Qwen3.5-35B-A3B-4bit, Qwen3.5-122B-A10B-4bit, "
        "Qwen3.5-9B-8bit in public code); some sizes are also published as -MLX-4bit; "
        "file sizes not read: computed, exact false",
    },
    "proxy-mlx": {
        "title": "No published accuracy for mlx-community Qwen3.5 quants: 8-bit taken equal to "
        "Q8_0, 6-bit to Q6_K, 4-bit (affine, group 64) to Q4_0",
        "url": "https://github.com/ggml-org/llama.cpp/blob/master/tools/perplexity/README.md",
    },
}
PRECISIONS = {
    "mlx-8bit": {
        "label": "MLX 8-bit",
        "kind": "mlx",
        "quality_loss": 0.0004,
        "quality_source": "proxy-mlx",
    },
    "mlx-6bit": {
        "label": "MLX 6-bit",
        "kind": "mlx",
        "quality_loss": 0.0035,
        "quality_source": "proxy-mlx",
    },
    "mlx-4bit": {
        "label": "MLX 4-bit",
        "kind": "mlx",
        "quality_loss": 0.0752,
        "quality_source": "proxy-mlx",
    },
}
RUNTIME = {
    "formats": ["mlx"],
    "kv_cache_types": ["bf16", "mlx-q8", "mlx-q4"],
    "min_version": "mlx-lm 0.32.2 (checked; models/qwen3_5.py)",
    "source": "mlx-runtime",
}


def main() -> None:
    raw = json.loads(TABLE.read_text(encoding="utf-8"))
    raw["sources"].update({k: v for k, v in SOURCES.items() if k not in raw["sources"]})
    raw["precisions"].update({k: v for k, v in PRECISIONS.items() if k not in raw["precisions"]})
    raw["runtimes"].setdefault("mlx", RUNTIME)
    table = SpecTable.model_validate(raw)
    for m, spec in zip(raw["models"], table.models, strict=True):
        have = {(a["precision"], a["format"]) for a in m["artifacts"]}
        size = spec.hf_repo.split("/")[-1]
        for precision, suffix in SUFFIX.items():
            if (precision, "mlx") in have:
                continue
            text = mlx.text_weight_bytes(spec.architecture, mlx.PRECISION_BITS[precision])
            vision = mlx.vision_bytes(spec)
            m["artifacts"].append(
                {
                    "precision": precision,
                    "format": "mlx",
                    "repo": f"mlx-community/{size}-{suffix}",
                    "text_bytes": text,
                    "vision_bytes": vision,
                    "mtp_bytes": None,
                    "download_bytes": text + vision,
                    "exact": False,
                    "source": "mlx-conversions",
                }
            )
    SpecTable.model_validate(raw)
    TABLE.write_text(json.dumps(raw, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
