"""Bytes of the MTP block (blk.{n_layer}.nextn.* and its layer tensors) per llama.cpp quant type.

Writes the zero-weight GGUF *with* the MTP layer (`make_gguf.py --mtp`), runs
`llama-quantize --dry-run` on it for every type `gguf_sizes.py` uses, and sums the exact bytes
of the tensors of block `n_layer` (the MTP block the converter appends). Also checks that the
rest of the file equals the no-MTP dry run in tests/fixtures/measured/llamacpp_quant_sizes.json
when that file has the model.

    PY=/work/rigs/llamacpp/venv/bin/python
    cd benchmarks/llamacpp && $PY gguf_mtp_sizes.py            # all models, ~1 min
    $PY gguf_mtp_sizes.py --models qwen3.6-27b --out /tmp/mtp.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import gguf_sizes
import make_gguf

OUT = make_gguf.REPO / "tests/fixtures/measured/llamacpp_mtp_sizes.json"


def mtp_dry_run(src: Path, qtype: str, n_layer: int) -> tuple[int, int, int]:
    """(total tensor bytes, MTP block bytes, MTP tensors) from one dry run."""
    proc = subprocess.run(
        [str(gguf_sizes.QUANTIZE), "--dry-run", str(src), qtype], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{src.name} {qtype}: llama-quantize failed: {proc.stderr[-500:]}")
    total = block = count = 0
    prefix = f"blk.{n_layer}."
    for m in gguf_sizes.LINE.finditer(proc.stdout + proc.stderr):
        shape = [int(x) for x in m["shape"].split(",")]
        nbytes = gguf_sizes.type_bytes(m["dst"] or m["src"], shape)
        total += nbytes
        if m["name"].startswith(prefix):
            block += nbytes
            count += 1
    return total, block, count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", help="default: all in data/model_specs.json")
    ap.add_argument("--gguf-dir", type=Path, default=gguf_sizes.RIG / "gguf")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    args.gguf_dir.mkdir(parents=True, exist_ok=True)
    models = make_gguf.load_models()
    no_mtp = json.loads(gguf_sizes.OUT.read_text())["models"] if gguf_sizes.OUT.exists() else {}
    result: dict = {
        "llama_cpp_python": "0.3.36",
        "llama_cpp_commit": gguf_sizes.llama_cpp_commit(),
        "command": "llama-quantize --dry-run <model>-mtp-BF16.gguf <TYPE>  (no imatrix)",
        "generator": "benchmarks/llamacpp/gguf_mtp_sizes.py",
        "notes": [
            "mtp_block_bytes: tensors named blk.{n_layer}.* (nextn.eh_proj, enorm, hnorm, "
            "shared_head_norm and the MTP layer's attention/FFN), at the type llama-quantize "
            "picks for them",
            "total_bytes - mtp_block_bytes equals the no-MTP tensor_bytes of "
            "llamacpp_quant_sizes.json except where rest_differs_from_no_mtp lists the "
            "difference (the mixes choose some types by layer index over block_count)",
        ],
        "models": {},
    }
    for name in args.models or list(models):
        model = models[name]
        n_layer = model["architecture"]["num_hidden_layers"]
        path, _ = make_gguf.gguf_paths(args.gguf_dir, name, mtp=True)
        info = make_gguf.write_text_gguf(model, path, mtp=True)
        entry: dict = {"n_layer": n_layer, "mtp_block_bytes": {}, "total_bytes": {}}
        entry["bf16_mtp_block_bytes"] = info["tensor_bytes"] - sum(
            t.nbytes for t in make_gguf.text_tensors(model)
        )
        for qtype in gguf_sizes.TYPES:
            total, block, count = mtp_dry_run(path, qtype, n_layer)
            key = qtype.lower()
            entry["mtp_block_bytes"][key] = block
            entry["total_bytes"][key] = total
            entry["mtp_tensors"] = count
            base = no_mtp.get(name, {}).get("tensor_bytes", {}).get(key)
            if base is not None and base != total - block:
                # llama-quantize's mixes pick types by layer index over block_count, which
                # the MTP block raises by one: record where that moves other tensors' types.
                entry.setdefault("rest_differs_from_no_mtp", {})[key] = total - block - base
            print(f"{name:20s} {qtype:7s} mtp={block}", file=sys.stderr)
        result["models"][name] = entry
    old = json.loads(args.out.read_text())["models"] if args.out.exists() else {}
    result["models"] = {**old, **result["models"]}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
