"""Exact GGUF tensor bytes per quantization type, as decided by llama.cpp's own quantizer.

Why: which tensors llama-quantize keeps at higher precision (Q6_K output, F32 norms/conv,
Q8_0/Q5_K bumps for attn_v/ffn_down in *_M mixes, ...) is llama.cpp policy, not a formula
we should re-derive. ``llama-quantize --dry-run`` runs that policy on our zero BF16 GGUF
without writing anything; it prints every tensor's shape and chosen type, from which the
exact byte count is nrows * ggml_row_size(type, ne0) (the same formula the quantizer uses).

Usage::

    # all models -> tests/fixtures/measured/llamacpp_quant_sizes.json
    python gguf_sizes.py
    python gguf_sizes.py --models qwen3.5-9b --out /tmp/sizes.json
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import gguf
import make_gguf

RIG = Path("/work/rigs/llamacpp")
VENDOR = RIG / "src/llama_cpp_python-0.3.36/vendor/llama.cpp"
QUANTIZE = RIG / "build/bin/llama-quantize"
OUT = make_gguf.REPO / "tests/fixtures/measured/llamacpp_quant_sizes.json"
TYPES = [
    "Q2_K",
    "Q3_K_S",
    "Q3_K_M",
    "Q3_K_L",
    "Q4_0",
    "IQ4_XS",
    "Q4_K_S",
    "Q4_K_M",
    "Q5_K_S",
    "Q5_K_M",
    "Q6_K",
    "Q8_0",
]

# "[  12/ 427]  blk.0.attn_qkv.weight  - [  4096,   8192,      1,      1], type =   bf16, ..."
LINE = re.compile(
    r"\[\s*\d+/\s*\d+\]\s+(?P<name>\S+)\s+-\s+\[(?P<shape>[\d,\s]+)\],\s+type =\s+(?P<src>\S+),\s+"
    r"size =\s+(?P<a>[\d.]+) MiB(?: ->\s+(?P<b>[\d.]+) MiB \((?P<dst>[^)]+)\))?"
)
TOTAL = re.compile(r"quant size\s*=\s*([\d.]+) MiB")


def llama_cpp_commit(vendor: Path = VENDOR) -> str:
    """Commit of the vendored llama.cpp (the sdist ships its .git)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(vendor), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def type_bytes(type_name: str, shape: list[int]) -> int:
    """nrows * row_size exactly as ggml_row_size computes it."""
    qt = gguf.GGMLQuantizationType[type_name.upper()]
    block, size = gguf.GGML_QUANT_SIZES[qt]
    ne0 = shape[0]
    if ne0 % block:
        raise ValueError(f"ne0={ne0} not a multiple of block {block} for {type_name}")
    return math.prod(shape[1:]) * (ne0 // block) * size


def dry_run(src: Path, qtype: str, quantize: Path = QUANTIZE) -> dict:
    """Run llama-quantize --dry-run and sum exact bytes from the per-tensor type choices."""
    cmd = [str(quantize), "--dry-run", str(src), qtype]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    tensors, types = 0, {}
    total = 0
    for m in LINE.finditer(text):
        shape = [int(x) for x in m["shape"].split(",")]
        dst = m["dst"] or m["src"]
        nbytes = type_bytes(dst, shape)
        total += nbytes
        tensors += 1
        types[dst] = types.get(dst, 0) + nbytes
    res = {
        "returncode": proc.returncode,
        "n_tensors": tensors,
        "tensor_bytes": total,
        "bytes_by_type": types,
        "seconds": round(time.time() - t0, 1),
    }
    if (mt := TOTAL.search(text)) is not None:
        res["printed_quant_size_mib"] = float(mt[1])
        if tensors and abs(total / 2**20 - float(mt[1])) > 0.01:
            res["warning"] = "per-tensor sum disagrees with printed total"
    notes = [
        ln.strip()
        for ln in text.splitlines()
        if "imatrix" in ln.lower() or "error" in ln.lower() or "fallback" in ln.lower()
    ]
    if notes:
        res["notes"] = notes[:10]
    if proc.returncode != 0 or not tensors:
        res["tail"] = text.splitlines()[-15:]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", help="default: all in data/model_specs.json")
    ap.add_argument("--gguf-dir", type=Path, default=RIG / "gguf")
    ap.add_argument("--quantize", type=Path, default=QUANTIZE)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    models = make_gguf.load_models()
    names = args.models or list(models)
    args.gguf_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "llama_cpp_python": "0.3.36",
        "llama_cpp_commit": llama_cpp_commit(),
        "command": (
            f"{args.quantize.name} --dry-run <model>-BF16.gguf <TYPE>"
            "  (no imatrix; BF16 source, no MTP)"
        ),
        "generator": "benchmarks/llamacpp/gguf_sizes.py (zero-weight GGUFs from make_gguf.py)",
        "notes": [
            "tensor_bytes = sum over tensors of nrows*ggml_row_size(chosen type, ne0), "
            "parsed from the dry-run "
            "per-tensor type choices; no alignment padding, no metadata",
            "bf16 = the converter's BF16 layout "
            "(1-D tensors, ssm_conv1d, ssm_a, ffn_gate_inp* in F32)",
            "bf16_file_bytes / mmproj_f16_file_bytes are our files: "
            "32-byte aligned tensors plus minimal "
            "metadata with a dummy ('none') tokenizer, so a published text GGUF is ~11 MB larger "
            "(real BPE vocab+merges)",
        ],
        "models": {},
    }
    for name in names:
        model = models[name]
        text_path, mmproj_path = make_gguf.gguf_paths(args.gguf_dir, name)
        text_info = make_gguf.write_text_gguf(model, text_path)
        mm_info = make_gguf.write_mmproj_gguf(model, mmproj_path)
        entry = {
            "tensor_bytes": {"bf16": text_info["tensor_bytes"]},
            "bf16_file_bytes": text_info["file_bytes"],
            "mmproj_f16_file_bytes": mm_info["file_bytes"],
            "mmproj_f16_tensor_bytes": mm_info["tensor_bytes"],
            "n_tensors": text_info["n_tensors"],
            "dry_run": {},
        }
        for qtype in TYPES:
            res = dry_run(text_path, qtype, args.quantize)
            key = qtype.lower()
            if res["returncode"] == 0 and res["n_tensors"] == text_info["n_tensors"]:
                entry["tensor_bytes"][key] = res["tensor_bytes"]
            entry["dry_run"][key] = {k: v for k, v in res.items() if k != "tensor_bytes"}
            print(
                f"{name:20s} {qtype:7s} rc={res['returncode']} "
                f"bytes={res['tensor_bytes']} ({res['seconds']}s)",
                file=sys.stderr,
            )
        result["models"][name] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
