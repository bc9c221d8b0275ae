"""Exact GGUF tensor bytes per tensor group and per layer, as llama.cpp's quantizer lays them out.

Why: planning partial GPU offload needs more than the file size. ``-ngl N`` moves whole
repeating layers (the last N) plus, once N > n_layer, the output layer; ``--n-cpu-moe N`` /
``-ot exps=CPU`` keep routed-expert tensors on the CPU; and llama.cpp always keeps
``token_embd`` on the CPU. So qwenfit needs bytes per layer and per group, for every quant.

Source of truth is the same as ``gguf_sizes.py``: ``llama-quantize --dry-run`` on our zero BF16
GGUF prints every tensor's shape and the type llama.cpp's policy picks. Its line parser
(``gguf_sizes.LINE``) and byte formula (``gguf_sizes.type_bytes``) are imported from there. BF16
uses the source type on the same lines (the file itself) and is cross-checked against
``make_gguf.text_tensors``.

Every model/quant is asserted to sum exactly to the total in
``tests/fixtures/measured/llamacpp_quant_sizes.json``.

Usage::

    # all models -> tests/fixtures/measured/llamacpp_tensor_groups.json
    python gguf_breakdown.py
    python gguf_breakdown.py --models qwen3.5-9b --out /tmp/groups.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import gguf_sizes
import make_gguf

OUT = make_gguf.REPO / "tests/fixtures/measured/llamacpp_tensor_groups.json"
SIZES = make_gguf.REPO / "tests/fixtures/measured/llamacpp_quant_sizes.json"
QUANTS = [*gguf_sizes.TYPES, "BF16"]
LAYER_KEYS = ("attn", "ffn_dense", "ffn_router", "ffn_experts", "ffn_shared", "other")
TOP_LEVEL = {
    "token_embd.weight": "token_embd",
    "output.weight": "output",
    "output_norm.weight": "output_norm",
}

BLK = re.compile(r"blk\.(?P<il>\d+)\.(?P<rest>.+)")
# common/common.h LLM_FFN_EXPS_REGEX: what --cpu-moe / --n-cpu-moe move to the CPU.
EXPS = re.compile(r"^ffn_(up|down|gate|gate_up)_(ch|)exps\.")
DENSE = re.compile(r"^ffn_(up|down|gate)\.")  # common/common.h LLM_FFN_DENSE_REGEX (--n-cpu-ffn)


def layer_group(rest: str) -> str:
    """Group of one per-layer tensor, ``rest`` being the name after ``blk.{il}.``."""
    if rest.startswith(("attn_", "ssm_")):  # incl. attn_norm, attn_{q,k}_norm, attn_gate (GDN)
        return "attn"
    if EXPS.match(rest):
        return "ffn_experts"
    if rest.startswith("ffn_gate_inp."):
        return "ffn_router"
    if rest.startswith("ffn_") and "_shexp." in rest:  # incl. ffn_gate_inp_shexp (shared gate)
        return "ffn_shared"
    if DENSE.match(rest):
        return "ffn_dense"
    return "other"  # post_attention_norm (the pre-FFN norm), nextn.* if MTP were present


def dry_run_tensors(src: Path, qtype: str, quantize: Path) -> list[tuple[str, list[int], str, str]]:
    """[(name, shape ne0-first, source type, chosen type)] from llama-quantize --dry-run."""
    proc = subprocess.run(
        [str(quantize), "--dry-run", str(src), qtype], capture_output=True, text=True
    )
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"{src.name} {qtype}: rc={proc.returncode}\n" + text[-2000:])
    out = []
    for m in gguf_sizes.LINE.finditer(text):
        shape = [int(x) for x in m["shape"].split(",")]
        out.append((m["name"], shape, m["src"], m["dst"] or m["src"]))
    return out


def breakdown(model: dict, tensors: list[tuple[str, list[int], str]]) -> dict:
    """Group [(name, shape, type)] into the top-level + per-layer byte layout."""
    arch = model["architecture"]
    n_layer = arch["num_hidden_layers"]
    res = {"token_embd": 0, "output": 0, "output_norm": 0}
    layers = [
        {
            "index": il,
            "kind": "full" if make_gguf.is_full_attention(arch, il) else "linear",
            **{k: 0 for k in LAYER_KEYS},
        }
        for il in range(n_layer)
    ]
    seen = set()
    for name, shape, qtype in tensors:
        if name in seen:
            raise AssertionError(f"duplicate tensor {name}")
        seen.add(name)
        nbytes = gguf_sizes.type_bytes(qtype, shape)
        if name in TOP_LEVEL:
            res[TOP_LEVEL[name]] += nbytes
            continue
        m = BLK.fullmatch(name)
        if m is None or int(m["il"]) >= n_layer:
            raise AssertionError(f"unexpected tensor {name} (MTP GGUF?)")
        il, rest = int(m["il"]), m["rest"]
        layer = layers[il]
        # the layer kind must agree with what the tensors say
        if rest.startswith(("attn_q.", "attn_qkv.")):
            kind = "full" if rest.startswith("attn_q.") else "linear"
            if kind != layer["kind"]:
                raise AssertionError(f"{name}: layer {il} is {layer['kind']} by the spec")
        layer[layer_group(rest)] += nbytes
    if "token_embd.weight" not in seen or "output_norm.weight" not in seen:
        raise AssertionError("missing token_embd / output_norm")
    if ("output.weight" in seen) == bool(arch["tie_word_embeddings"]):
        raise AssertionError("output.weight presence disagrees with tie_word_embeddings")
    res["layers"] = layers
    return res


def total(entry: dict) -> int:
    return (
        entry["token_embd"]
        + entry["output"]
        + entry["output_norm"]
        + sum(layer[k] for layer in entry["layers"] for k in LAYER_KEYS)
    )


def dumps(result: dict) -> str:
    """indent=1 JSON, but one line per layer record (keeps the file ~10x shorter)."""
    marks = {}

    def walk(obj):
        if isinstance(obj, dict):
            if "index" in obj and "kind" in obj:
                key = f"@@LAYER{len(marks)}@@"
                marks[key] = json.dumps(obj, separators=(", ", ": "))
                return key
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    text = json.dumps(walk(result), indent=1)
    return re.sub(r'"(@@LAYER\d+@@)"', lambda m: marks[m[1]], text) + "\n"


def summary(result: dict) -> list[str]:
    lines = []
    gib = 2**30
    for name, quants in result["models"].items():
        q = quants.get("q4_k_m")
        if q is None:
            continue
        exps = sum(layer["ffn_experts"] for layer in q["layers"])
        tot = total(q)
        head = q["output"] + q["output_norm"]
        lines.append(
            f"{name:19s} Q4_K_M total {tot:>15,d} ({tot / gib:7.2f} GiB)  "
            f"token_embd {q['token_embd']:>13,d}  output+norm {head:>13,d}  "
            f"routed experts {exps:>15,d} ({exps / gib:6.2f} GiB)  "
            f"everything else {tot - exps:>14,d} ({(tot - exps) / gib:5.2f} GiB)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", help="default: all in data/model_specs.json")
    ap.add_argument("--gguf-dir", type=Path, default=gguf_sizes.RIG / "gguf")
    ap.add_argument("--quantize", type=Path, default=gguf_sizes.QUANTIZE)
    ap.add_argument("--sizes", type=Path, default=SIZES, help="totals to check against")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    models = make_gguf.load_models()
    names = args.models or list(models)
    sizes = json.loads(args.sizes.read_text())
    commit = gguf_sizes.llama_cpp_commit()
    if commit != sizes["llama_cpp_commit"]:
        raise AssertionError(f"llama.cpp {commit} != {sizes['llama_cpp_commit']} of {args.sizes}")
    args.gguf_dir.mkdir(parents=True, exist_ok=True)

    result = {
        "llama_cpp_python": "0.3.36",
        "llama_cpp_commit": commit,
        "command": (
            f"{args.quantize.name} --dry-run <model>-BF16.gguf <TYPE>"
            "  (no imatrix; BF16 source, no MTP)"
        ),
        "generator": "benchmarks/llamacpp/gguf_breakdown.py (zero-weight GGUFs from make_gguf.py)",
        "quant_types": [q.lower() for q in QUANTS],
        "notes": [
            "bytes = sum of nrows*ggml_row_size(chosen type, ne0) per tensor, parsed from the "
            "dry-run; no alignment padding, no metadata. Per model/quant, token_embd + output + "
            "output_norm + all layer fields == tensor_bytes in llamacpp_quant_sizes.json "
            "(asserted)",
            "bf16 = the source GGUF (converter layout: 1-D tensors, ssm_conv1d, ssm_a and "
            "ffn_gate_inp* in F32)",
            "layers[i].attn: attn_norm + attention (attn_q/k/v/output, attn_q_norm/k_norm) for "
            "kind=full, or Gated DeltaNet (attn_qkv, attn_gate, ssm_*) for kind=linear",
            "ffn_dense: ffn_{gate,up,down} (dense models); ffn_router: ffn_gate_inp; "
            "ffn_experts: ffn_{gate,up,down}_exps (what -ot exps=CPU / --n-cpu-moe keep on CPU); "
            "ffn_shared: ffn_{gate,up,down}_shexp + ffn_gate_inp_shexp; "
            "other: post_attention_norm (the pre-FFN RMSNorm, n_embd*4 B)",
            "output = 0 when embeddings are tied. llama.cpp (src/llama-model.cpp) always puts "
            "token_embd on the CPU (dev_input); output + output_norm form layer n_layer, offloaded "
            "only when -ngl > n_layer; -ngl N offloads the last N of the n_layer+1 layers",
            "tied models: the output layer reuses token_embd (TENSOR_DUPLICATED); on a GPU that is "
            "a second copy of token_embd's bytes in the GPU buffer, on CPU no extra bytes",
        ],
        "models": {},
    }
    for name in names:
        model = models[name]
        text_path, _ = make_gguf.gguf_paths(args.gguf_dir, name)
        if not text_path.exists():
            make_gguf.write_text_gguf(model, text_path)
        spec_bytes = {t.name: t.nbytes for t in make_gguf.text_tensors(model)}
        expected = sizes["models"][name]["tensor_bytes"]
        entry = {}
        for qtype in QUANTS:
            key = qtype.lower()
            # BF16 is the source file: any dry run lists its tensors with the source type
            raw = dry_run_tensors(text_path, "Q8_0" if qtype == "BF16" else qtype, args.quantize)
            if len(raw) != len(spec_bytes):
                raise AssertionError(f"{name} {qtype}: {len(raw)} tensors, spec {len(spec_bytes)}")
            if qtype == "BF16":
                tensors = [(n, s, src) for n, s, src, _ in raw]
                for n, s, src in tensors:
                    if gguf_sizes.type_bytes(src, s) != spec_bytes[n]:
                        raise AssertionError(f"{name} {n}: GGUF on disk differs from make_gguf")
            else:
                tensors = [(n, s, dst) for n, s, _, dst in raw]
            entry[key] = breakdown(model, tensors)
            got = total(entry[key])
            if got != expected[key]:
                raise AssertionError(
                    f"{name} {qtype}: groups sum to {got}, llamacpp_quant_sizes.json has "
                    f"{expected[key]}"
                )
        print(f"{name:20s} ok: {len(QUANTS)} types sum to quant_sizes totals", file=sys.stderr)
        result["models"][name] = entry

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(result))
    for line in summary(result):
        print(line)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
