"""Derive data/gguf_layers.json (what qwenfit's offload planner reads) from llama.cpp's tensors.

Input: tests/fixtures/measured/llamacpp_tensor_groups.json, written by
benchmarks/llamacpp/gguf_breakdown.py from `llama-quantize --dry-run`. Output, per model and
precision: token_embd bytes (llama.cpp keeps them on the CPU), output bytes (output + output_norm,
the extra layer `-ngl` offloads last), and per layer the bytes that stay with the layer
(`layer`) and the routed experts (`experts`) that `--n-cpu-moe` can keep in RAM.
Usage: python benchmarks/spec_table/gguf_layers.py
"""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "tests" / "fixtures" / "measured" / "llamacpp_tensor_groups.json"
TARGET = REPO / "data" / "gguf_layers.json"


def main() -> None:
    measured = json.loads(SOURCE.read_text())
    models: dict[str, dict[str, object]] = {}
    for name, quants in measured["models"].items():
        models[name] = {}
        for quant, groups in quants.items():
            layers = groups["layers"]
            models[name][quant] = {
                "token_embd": groups["token_embd"],
                "output": groups["output"] + groups["output_norm"],
                "layer": [
                    sum(v for k, v in x.items() if k not in ("index", "kind", "ffn_experts"))
                    for x in layers
                ],
                "experts": [x["ffn_experts"] for x in layers],
            }
    doc = {
        "note": "GGUF tensor bytes by placement group, stock llama.cpp quantization "
        "(benchmarks/spec_table/gguf_layers.py from llama-quantize --dry-run).",
        "llama_cpp_commit": measured["llama_cpp_commit"],
        "models": models,
    }
    TARGET.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {TARGET.relative_to(REPO)} ({TARGET.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
