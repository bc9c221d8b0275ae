"""What llama.cpp allocates for MTP speculative decoding, and what a context checkpoint copies.

Loads the zero-weight GGUF *with* the MTP block (`make_gguf.py --mtp`) the way llama-server
does for `--spec-type draft-mtp` (common/common.cpp, common/speculative.cpp of the vendored
llama.cpp 0c1e570):

- model: `llama_model_params.load_mtp = true` (otherwise the blk.{n_layer} tensors are skipped);
- target context: `n_rs_seq = --spec-draft-n-max` (3 by default), i.e. recurrent-state rows for
  rollback;
- draft context: `ctx_type = LLAMA_CONTEXT_TYPE_MTP`, same `n_ctx` / `n_seq_max` / `n_ubatch`,
  `n_rs_seq = 0`, `ctx_other = target`.

It reads llama.cpp's own buffer accounting (memory breakdown through the qf_breakdown shim) for
both contexts, and `llama_state_seq_get_size_ext(ctx, 0, LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY)`:
the bytes llama-server's `create_checkpoint` copies into host RAM for one slot
(tools/server/server-context.cpp). Writes tests/fixtures/measured/llamacpp_mtp_memory.json.

    PY=/work/rigs/llamacpp/venv/bin/python
    cd benchmarks/llamacpp && $PY measure_mtp.py        # ~1 min
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import gguf_sizes
import make_gguf
import measure_memory as mm

OUT = make_gguf.REPO / "tests/fixtures/measured/llamacpp_mtp_memory.json"
PARTIAL_ONLY = 1  # LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY (include/llama.h)

GRID = [
    # (model, n_ctx, n_seq_max, n_rs_seq, draft context)
    ("qwen3.6-27b", 32768, 1, 0, False),
    ("qwen3.6-27b", 32768, 1, 3, True),
    ("qwen3.6-27b", 32768, 4, 3, True),
    ("qwen3.6-27b", 131072, 1, 3, True),
    ("qwen3.6-35b-a3b", 32768, 1, 3, True),
    ("qwen3.5-0.8b", 8192, 1, 0, False),
    ("qwen3.5-0.8b", 8192, 2, 3, True),
]


def _breakdown(shim: ctypes.CDLL, ctx: int) -> dict:
    names = ctypes.create_string_buffer(64 * 16)
    vals = (ctypes.c_uint64 * (3 * 16))()
    n = shim.qf_memory_breakdown(ctx, names, 64, vals, 16)
    rows = {
        names.raw[64 * i : 64 * (i + 1)].split(b"\0", 1)[0].decode(): {
            "model": vals[3 * i],
            "context": vals[3 * i + 1],
            "compute": vals[3 * i + 2],
        }
        for i in range(n)
    }
    cache = (ctypes.c_uint64 * 2)()
    hybrid = bool(shim.qf_cache_bytes(ctx, cache))
    return {
        "by_buffer_type": rows,
        "model": sum(r["model"] for r in rows.values()),
        "context": sum(r["context"] for r in rows.values()),
        "compute": sum(r["compute"] for r in rows.values()),
        "kv": cache[0] if hybrid else None,
        "rs": cache[1] if hybrid else None,
    }


def _run_one(cfg: dict) -> dict:
    os.environ.setdefault("LLAMA_CPP_LIB_PATH", str(mm.LIB_DIR))
    import llama_cpp as lc

    lines: list[str] = []

    @lc.llama_log_callback
    def _log(level, text, user_data):
        if level != 1:
            lines.append(text.decode("utf-8", "replace"))

    lc.llama_log_set(_log, ctypes.c_void_p())
    lc.llama_backend_init()
    mp = lc.llama_model_default_params()
    mp.n_gpu_layers = 0
    mp.no_alloc = bool(cfg["no_alloc"])
    mp.load_mode = lc.LLAMA_LOAD_MODE_NONE if mp.no_alloc else lc.LLAMA_LOAD_MODE_MMAP
    mp.load_mtp = bool(cfg["load_mtp"])
    model = lc.llama_model_load_from_file(cfg["path"].encode(), mp)
    if not model:
        return {"error": "model load failed", "log": "".join(lines).splitlines()[-20:]}

    def params(**kw: object) -> object:
        cp = lc.llama_context_default_params()
        cp.n_ctx = cfg["n_ctx"]
        cp.n_batch = 2048
        cp.n_ubatch = 512
        cp.n_seq_max = cfg["n_seq_max"]
        cp.kv_unified = True  # llama-server's default (common.h kv_unified = true)
        cp.flash_attn_type = 1
        cp.n_threads = cp.n_threads_batch = 2
        cp.no_perf = True
        for k, v in kw.items():
            setattr(cp, k, v)
        return cp

    ctx = lc.llama_init_from_model(model, params(n_rs_seq=cfg["n_rs_seq"]))
    if not ctx:
        return {"error": "target context failed", "log": "".join(lines).splitlines()[-20:]}
    shim = ctypes.CDLL(str(mm.SHIM))
    shim.qf_memory_breakdown.restype = ctypes.c_int
    shim.qf_memory_breakdown.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.c_int,
    ]
    shim.qf_cache_bytes.restype = ctypes.c_int
    shim.qf_cache_bytes.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64)]
    res: dict = {
        "n_ctx": lc.llama_n_ctx(ctx),
        "n_rs_seq": lc.llama_n_rs_seq(ctx),
        "target": _breakdown(shim, ctx),
        "checkpoint_bytes_target_empty": lc.llama_state_seq_get_size_ext(ctx, 0, PARTIAL_ONLY),
    }
    if not cfg["no_alloc"]:
        # a real context: process a short prompt on sequence 0, then size what a checkpoint
        # of that slot copies (its recurrent row; PARTIAL_ONLY leaves the attention KV out)
        n = cfg["prompt_tokens"]
        toks = (lc.llama_token * n)(*range(1, n + 1))
        rc = lc.llama_decode(ctx, lc.llama_batch_get_one(toks, n))
        res["decode_rc"] = rc
        res["prompt_tokens"] = n
        res["checkpoint_bytes_target"] = lc.llama_state_seq_get_size_ext(ctx, 0, PARTIAL_ONLY)
        res["state_bytes_full"] = lc.llama_state_seq_get_size_ext(ctx, 0, 0)
    if cfg["draft"]:
        dft = lc.llama_init_from_model(
            model, params(n_rs_seq=0, ctx_type=lc.LLAMA_CONTEXT_TYPE_MTP, ctx_other=ctx)
        )
        if not dft:
            return {
                **res,
                "error": "draft context failed",
                "log": "".join(lines).splitlines()[-20:],
            }
        res["draft"] = _breakdown(shim, dft)
        res["draft"]["n_ctx"] = lc.llama_n_ctx(dft)
        res["checkpoint_bytes_draft_empty"] = lc.llama_state_seq_get_size_ext(dft, 0, PARTIAL_ONLY)
        lc.llama_free(dft)
    lc.llama_free(ctx)
    lc.llama_model_free(model)
    keep = ("llama_kv_cache", "llama_memory_recurrent", "buffer size", "mtp", "MTP", "nextn")
    res["log"] = [ln.rstrip() for ln in "".join(lines).splitlines() if any(k in ln for k in keep)]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--one")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(_run_one(json.loads(args.one))))
        return 0
    models = make_gguf.load_models()
    mm.GGUF_DIR.mkdir(parents=True, exist_ok=True)
    records = []
    for name, n_ctx, n_seq, n_rs, draft in GRID:
        model = models[name]
        path, _ = make_gguf.gguf_paths(mm.GGUF_DIR, name, mtp=True)
        info = make_gguf.write_text_gguf(model, path, mtp=True)
        cfg = {
            "model": name,
            "path": str(path),
            "n_ctx": n_ctx,
            "n_seq_max": n_seq,
            "n_rs_seq": n_rs,
            "draft": draft,
            "load_mtp": True,
            "prompt_tokens": 64,
            "no_alloc": info["tensor_bytes"] > mm.REAL_MAX_FILE,
        }
        env = {**os.environ, "LLAMA_CPP_LIB_PATH": str(mm.LIB_DIR), "OMP_NUM_THREADS": "2"}
        t0 = time.time()
        proc = subprocess.run(
            [sys.executable, __file__, "--one", json.dumps(cfg)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        out = proc.stdout.strip().splitlines()
        rec = {k: v for k, v in cfg.items() if k != "path"}
        rec["bf16_tensor_bytes_with_mtp"] = info["tensor_bytes"]
        rec.update(json.loads(out[-1]) if out else {"error": proc.stderr[-800:]})
        rec["seconds"] = round(time.time() - t0, 1)
        print(
            f"{name} n_ctx={n_ctx} seqs={n_seq} rs_seq={n_rs} draft={draft}: "
            f"{rec.get('error', 'ok')}",
            file=sys.stderr,
        )
        records.append(rec)
    doc = {
        "schema_version": 1,
        "llama_cpp_python": "0.3.36",
        "llama_cpp_commit": gguf_sizes.llama_cpp_commit(),
        "generator": "benchmarks/llamacpp/measure_mtp.py",
        "notes": [
            "bytes from llama_get_memory_breakdown (qf_breakdown shim); kv/rs from the hybrid "
            "memory's own parts; no_alloc records are llama.cpp's dry reservation",
            "checkpoint_bytes_target = llama_state_seq_get_size_ext(target, seq 0, "
            "PARTIAL_ONLY) after decoding prompt_tokens on seq 0 (real loads only): the bytes a "
            "llama-server context checkpoint copies to host RAM for the target; *_empty: the "
            "same on an empty sequence (header only)",
            "kv_unified true, flash attention on, n_ubatch 512, n_batch 2048, f16 K/V (target "
            "and draft)",
        ],
        "records": records,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
