"""Measure what llama.cpp itself allocates (weights, KV, recurrent state, output, compute).

Why: the estimator's KV / recurrent-state / compute-buffer terms must be validated against the
runtime, not against our own formulas. Each configuration is loaded in a fresh subprocess
through llama-cpp-python's low-level API (CPU, mmap, no warm-up); llama.cpp's log lines are
captured and parsed, and exact byte counts come from llama.cpp's own memory-breakdown API via
the small ``qf_breakdown`` shim built by build.sh (the log only has MiB with 2 decimals).

Configurations whose KV cache would not fit in this machine's RAM are run with llama.cpp's
``no_alloc`` model parameter (the dry reservation path used by llama_params_fit): the same
buffers and compute graph are sized but nothing is allocated.

Usage::

    # full grid -> tests/fixtures/measured/llamacpp_memory.json
    python measure_memory.py
    python measure_memory.py --models qwen3.5-0.8b --quick --out /tmp/mem.json
    # internal: one run (full config JSON, see run_config), result JSON on stdout
    python measure_memory.py --one '{...}'
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import make_gguf

RIG = Path("/work/rigs/llamacpp")
LIB_DIR = RIG / "build/bin"
SHIM = RIG / "build/libqf_breakdown.so"
QUANTIZE = RIG / "build/bin/llama-quantize"
GGUF_DIR = RIG / "gguf"
OUT = make_gguf.REPO / "tests/fixtures/measured/llamacpp_memory.json"
RAM_BUDGET = 8 * 2**30  # real allocations above this use no_alloc instead
# mmap loads use MAP_POPULATE (llama_mmap prefetch): reading a 70-800 GB hole takes minutes to
# half an hour, so models whose BF16 file is larger than this are sized with no_alloc.
REAL_MAX_FILE = 20 * 10**9
MIB = 1024 * 1024

DEFAULTS = {
    "weights": "bf16",
    "n_ctx": 4096,
    "n_seq_max": 1,
    "kv_unified": False,
    "type_k": "f16",
    "type_v": "f16",
    "n_ubatch": 512,
    "n_batch": 2048,
    "flash_attn": "auto",
    "no_alloc": False,
    # 0: the library default (logits reserved for every ubatch token); llama-server sets it to
    # its slot count (tools/server/server-context.cpp server_output_limits)
    "n_outputs_max": 0,
}
GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8, "bf16": 30}
FA = {"auto": -1, "off": 0, "on": 1}
TYPE_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}

BUF_RE = re.compile(
    r"(?P<buf>\S+)\s+(?P<kind>model|KV|RS|output|compute) buffer size\s*=\s*(?P<mib>[\d.]+) MiB"
)
KEEP_RE = re.compile(
    r"buffer size|llama_kv_cache: size|llama_memory_recurrent: size|flash_attn|n_ctx|n_ubatch|"
    r"n_batch|n_seq_max|kv_unified|graph:|repack|REPACK|fused|Flash Attention|n_outputs_max|"
    r"causal_attn|matches expectation"
)


# ----------------------------------------------------------------------------------------------
# child: one load, in-process
# ----------------------------------------------------------------------------------------------


def _run_one(cfg: dict) -> dict:
    """Load model + context once with llama.cpp and report buffers (runs in a subprocess)."""
    os.environ.setdefault("LLAMA_CPP_LIB_PATH", str(LIB_DIR))
    import llama_cpp as lc

    lines: list[str] = []
    pending = [""]

    @lc.llama_log_callback
    def _log(level, text, user_data):
        if level == 1:  # GGML_LOG_LEVEL_DEBUG: per-tensor graph chatter
            return
        pending[0] += text.decode("utf-8", "replace")
        while "\n" in pending[0]:
            line, pending[0] = pending[0].split("\n", 1)
            lines.append(line)

    lc.llama_log_set(_log, ctypes.c_void_p())
    lc.llama_backend_init()

    mp = lc.llama_model_default_params()
    mp.n_gpu_layers = 0
    mp.no_alloc = bool(cfg["no_alloc"])
    # mmap for real loads; llama.cpp asserts !no_alloc on the mmap path
    # (llama_params_fit also disables mmap for its no_alloc pass)
    mp.load_mode = lc.LLAMA_LOAD_MODE_NONE if mp.no_alloc else lc.LLAMA_LOAD_MODE_MMAP
    t0 = time.time()
    model = lc.llama_model_load_from_file(cfg["path"].encode(), mp)
    if not model:
        return {
            "error": "model load failed",
            "log": [ln for ln in lines if KEEP_RE.search(ln)][-40:],
        }
    t_model = time.time() - t0

    cp = lc.llama_context_default_params()
    kv_unified_default = bool(cp.kv_unified)
    cp.n_ctx = cfg["n_ctx"]
    cp.n_batch = cfg["n_batch"]
    cp.n_ubatch = cfg["n_ubatch"]
    cp.n_seq_max = cfg["n_seq_max"]
    cp.kv_unified = cfg["kv_unified"]
    cp.type_k = GGML_TYPES[cfg["type_k"]]
    cp.type_v = GGML_TYPES[cfg["type_v"]]
    cp.flash_attn_type = FA[cfg["flash_attn"]]
    cp.n_threads = cp.n_threads_batch = 2
    cp.no_perf = True
    cp.n_outputs_max = cfg["n_outputs_max"]
    cp.n_outputs_max_per_seq = 1 if cfg["n_outputs_max"] else 0
    ctx = lc.llama_init_from_model(model, cp)
    if not ctx:
        return {
            "error": "context creation failed",
            "log": [ln for ln in lines if KEEP_RE.search(ln)][-40:],
        }
    t_ctx = time.time() - t0 - t_model

    res = {
        "n_ctx": lc.llama_n_ctx(ctx),
        "n_ctx_seq": lc.llama_n_ctx_seq(ctx) if hasattr(lc, "llama_n_ctx_seq") else None,
        "n_batch": lc.llama_n_batch(ctx),
        "n_ubatch": lc.llama_n_ubatch(ctx),
        "n_seq_max": lc.llama_n_seq_max(ctx),
        "n_vocab": lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(model)),
        "model_size_api": lc.llama_model_size(model),
        "kv_unified_default": kv_unified_default,
        "seconds_model": round(t_model, 2),
        "seconds_context": round(t_ctx, 2),
    }
    if SHIM.exists():
        shim = ctypes.CDLL(str(SHIM))
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
        names = ctypes.create_string_buffer(64 * 16)
        vals = (ctypes.c_uint64 * (3 * 16))()
        n = shim.qf_memory_breakdown(ctx, names, 64, vals, 16)
        res["breakdown"] = {
            names.raw[64 * i : 64 * (i + 1)].split(b"\0", 1)[0].decode(): {
                "model": vals[3 * i],
                "context": vals[3 * i + 1],
                "compute": vals[3 * i + 2],
            }
            for i in range(n)
        }
        cache = (ctypes.c_uint64 * 2)()
        if shim.qf_cache_bytes(ctx, cache):
            res["kv_exact"], res["rs_exact"] = cache[0], cache[1]
    lc.llama_free(ctx)
    lc.llama_model_free(model)
    res["log"] = [ln.rstrip() for ln in lines if KEEP_RE.search(ln)]
    return res


# ----------------------------------------------------------------------------------------------
# parent: grid, subprocesses, parsing
# ----------------------------------------------------------------------------------------------


def parse_log(log: list[str]) -> dict:
    """MiB values per buffer kind (summed over buffer types) and per named buffer."""
    out: dict[str, float] = {}
    for ln in log:
        m = BUF_RE.search(ln)
        if not m:
            continue
        kind = {"KV": "kv", "RS": "rs"}.get(m["kind"], m["kind"])
        out[kind] = round(out.get(kind, 0.0) + float(m["mib"]), 2)
        if kind == "model":
            out[f"model_{m['buf']}"] = float(m["mib"])
    return out


def estimate_bytes(model: dict, cfg: dict) -> int:
    """Rough RAM need (KV + RS + compute + output), only used to decide real vs no_alloc."""
    a = model["architecture"]
    n_attn = sum(make_gguf.is_full_attention(a, i) for i in range(a["num_hidden_layers"]))
    n_lin = a["num_hidden_layers"] - n_attn
    kvd = a["num_key_value_heads"] * a["head_dim"]
    kv = cfg["n_ctx"] * n_attn * kvd * (TYPE_BYTES[cfg["type_k"]] + TYPE_BYTES[cfg["type_v"]])
    v_dim = a["linear_num_value_heads"] * a["linear_value_head_dim"]
    conv = 2 * a["linear_num_key_heads"] * a["linear_key_head_dim"] + v_dim
    rs = (
        cfg["n_seq_max"]
        * n_lin
        * 4
        * (
            conv * (a["linear_conv_kernel_dim"] - 1)
            + a["linear_num_value_heads"] * a["linear_value_head_dim"] ** 2
        )
    )
    compute = 4 * a["vocab_size"] * cfg["n_ubatch"] + 64 * MIB
    if cfg["flash_attn"] == "off":
        compute += 4 * cfg["n_ctx"] * cfg["n_ubatch"] * a["num_attention_heads"]
    return int(kv + rs + compute)


def weights_path(name: str, weights: str) -> Path:
    return GGUF_DIR / (
        f"{name}-BF16.gguf" if weights == "bf16" else f"{name}-{weights.upper()}.gguf"
    )


def ensure_weights(model: dict, weights: str) -> Path:
    """Zero BF16 GGUF (sparse) or a real llama-quantize output of it."""
    path = weights_path(model["name"], weights)
    bf16 = weights_path(model["name"], "bf16")
    if not bf16.exists():
        make_gguf.write_text_gguf(model, bf16)
    tmp = path.with_suffix(".tmp")
    while tmp.exists() and not path.exists():  # measure_cpu_speed.py is quantizing it now
        time.sleep(5)
    if weights != "bf16" and not path.exists():
        subprocess.run(
            [str(QUANTIZE), str(bf16), str(tmp), weights.upper(), "2"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        tmp.rename(path)
    return path


def run_config(model: dict, cfg: dict, timeout: int) -> dict:
    """Run one configuration in a subprocess and build the fixture record."""
    cfg = {**DEFAULTS, **cfg, "model": model["name"]}
    cfg["path"] = str(ensure_weights(model, cfg["weights"]))
    env = {**os.environ, "LLAMA_CPP_LIB_PATH": str(LIB_DIR), "OMP_NUM_THREADS": "2"}
    t0 = time.time()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--one", json.dumps(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        return {**_cfg_fields(cfg), "error": f"timeout after {timeout}s"}
    rusage = _child_rusage()
    if proc.returncode != 0 or not stdout.strip():
        return {
            **_cfg_fields(cfg),
            "error": f"exit {proc.returncode}",
            "stderr_tail": stderr.splitlines()[-15:],
        }
    res = json.loads(stdout.strip().splitlines()[-1])
    if "error" in res:
        return {**_cfg_fields(cfg), **res}
    mib = parse_log(res["log"])
    exact: dict[str, int] = {}
    bd = res.get("breakdown", {})
    if bd:
        exact["model"] = sum(v["model"] for v in bd.values())
        exact["compute"] = sum(v["compute"] for v in bd.values())
        exact["context_total"] = sum(v["context"] for v in bd.values())
        for buft, v in bd.items():
            if v["model"] and len(bd) > 1:
                exact[f"model_{buft}"] = v["model"]
    if "kv_exact" in res:
        exact["kv"], exact["rs"] = res["kv_exact"], res["rs_exact"]
    # output buffer at init = n_vocab * max(n_outputs, n_seq_max) floats
    # (llama_context::output_reserve)
    out_formula = res["n_vocab"] * res["n_seq_max"] * 4
    if "output" in mib and abs(out_formula / MIB - mib["output"]) <= 0.006:
        exact["output"] = out_formula
    buffers = {
        k: exact.get(k, round(mib[k] * MIB))
        for k in ("model", "kv", "rs", "output", "compute")
        if k in exact or k in mib
    }
    for k, v in exact.items():
        buffers.setdefault(k, v)
    for k, v in mib.items():
        if (
            k.startswith("model_") and not cfg["no_alloc"]
        ):  # no_alloc logs 0.00 MiB for unallocated buffers
            buffers.setdefault(k, exact.get(k, round(v * MIB)))
    fa = _resolved_fa(res["log"], cfg["flash_attn"])
    rec = {
        **_cfg_fields(cfg),
        "n_ctx_requested": cfg["n_ctx"],
        "n_ctx": res["n_ctx"],
        "n_batch": res["n_batch"],
        "n_ubatch": res["n_ubatch"],
        "n_seq_max": res["n_seq_max"],
        "flash_attn": fa,
        "flash_attn_requested": cfg["flash_attn"],
        "buffers_bytes": buffers,
        "exact_keys": sorted(k for k in buffers if k in exact),
        "buffers_mib_logged": mib,
        "n_vocab": res["n_vocab"],
        "model_size_api": res["model_size_api"],
        "kv_unified_default": res["kv_unified_default"],
        "max_rss_bytes": rusage,
        "seconds": round(time.time() - t0, 1),
        "log": res["log"],
    }
    return rec


_last_children_rss = [0]


def _child_rusage() -> int | None:
    """ru_maxrss of children is a running max; report it (KiB -> bytes) when it grew."""
    import resource

    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    grew = rss > _last_children_rss[0]
    _last_children_rss[0] = max(rss, _last_children_rss[0])
    return rss if grew else None


def _cfg_fields(cfg: dict) -> dict:
    return {
        k: cfg[k]
        for k in (
            "model",
            "weights",
            "n_ctx",
            "n_seq_max",
            "kv_unified",
            "type_k",
            "type_v",
            "n_ubatch",
            "n_batch",
            "flash_attn",
            "no_alloc",
            "n_outputs_max",
        )
    }


def _resolved_fa(log: list[str], requested: str) -> str:
    """'on'/'off' as llama.cpp resolved it (auto is decided at context creation)."""
    for ln in log:
        low = ln.lower()
        if "flash attention" in low:
            if "disabled" in low or "not supported" in low:
                return "off"
            if "enabled" in low:
                return "on"
    return {"on": "on", "off": "off"}.get(requested, "unknown")


def build_grid(names: list[str], quick: bool, server: bool) -> list[tuple[str, dict]]:
    """(model, overrides) for every run; see module docstring and README.

    server (llama-server's reservation, n_outputs_max = slots; the configurations qwenfit
    estimates): for every model 4k-262k x flash attention on/off at ubatch 512, ubatch 2048 at
    32k and 262k, q8_0 / q4_0 KV and 4 sequences at 262k (32k too for 4 sequences), `auto` at
    262k; real Q8_0 / Q4_K_M loads of 0.8B-4B at 4k and 262k.
    library (llama.cpp's default context: logits for every ubatch token): 4k-262k with flash
    attention on, 262k with it off and with ubatch 2048, the earlier detail runs (ubatch 128,
    unified KV), and the quantized loads at 4k and 262k.
    9B and larger are not quantized here (llama-quantize of 9B takes 8-15 min on 2 shared
    cores); their compute buffer does not depend on the weight type on this backend (the
    0.8B-4B pairs show it), and their GGUF sizes are exact from llama-quantize --dry-run.
    """
    ctxs = [4096, 32768] if quick else [4096, 32768, 131072, 262144]
    top = ctxs[-1]
    grid: list[tuple[str, dict]] = []
    quant = [] if quick else [n for n in ("qwen3.5-0.8b", "qwen3.5-2b", "qwen3.5-4b") if n in names]
    for n in names:
        if server:
            for c in ctxs:
                for fa in ("on", "off"):
                    grid.append((n, {"n_ctx": c, "flash_attn": fa}))
            for c in (ctxs[1], top):
                for fa in ("on", "off"):
                    grid.append((n, {"n_ctx": c, "flash_attn": fa, "n_ubatch": 2048}))
                grid.append((n, {"n_ctx": c, "n_seq_max": 4, "flash_attn": "on"}))
            for t in ("q8_0", "q4_0"):
                grid.append((n, {"n_ctx": top, "type_k": t, "type_v": t, "flash_attn": "on"}))
            grid.append((n, {"n_ctx": top}))  # flash_attn auto
        else:
            for c in ctxs:
                grid.append((n, {"n_ctx": c, "flash_attn": "on"}))
            grid.append((n, {"n_ctx": top, "flash_attn": "off"}))
            grid.append((n, {"n_ctx": top, "flash_attn": "on", "n_ubatch": 2048}))
    if not server:
        for n in [n for n in ("qwen3.5-0.8b", "qwen3.5-9b", "qwen3.5-35b-a3b") if n in names]:
            grid.append((n, {"n_ctx": 32768, "n_seq_max": 4, "kv_unified": True}))
            grid.append((n, {"n_ctx": 32768, "n_ubatch": 128}))
    for n in quant:
        for w in ("q8_0", "q4_k_m"):
            for c in (4096, top):
                for fa in ("on", "off") if server else ("on",):
                    grid.append((n, {"n_ctx": c, "weights": w, "flash_attn": fa}))
            if server:
                grid.append((n, {"n_ctx": top, "weights": w, "flash_attn": "on", "n_ubatch": 2048}))
    if "qwen3.5-9b" in names and not server:  # no_alloc reservation == real allocation
        grid.append(("qwen3.5-9b", {"n_ctx": 32768, "no_alloc": True}))
    return grid


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--one", help="internal: run one JSON config and print JSON")
    ap.add_argument("--models", nargs="*")
    ap.add_argument("--quick", action="store_true", help="4096/32768 only, no quantized loads")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument(
        "--mode",
        choices=("library", "server", "both"),
        default="both",
        help="library: llama.cpp's default context (logits for every ubatch token); "
        "server: n_outputs_max = slots, as llama-server sets it; both (default)",
    )
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(_run_one(json.loads(args.one))))
        return 0

    sys.path.insert(0, str(Path(__file__).parent))
    from gguf_sizes import llama_cpp_commit

    models = make_gguf.load_models()
    names = args.models or list(models)
    records, skipped = [], []
    t_all = time.time()
    runs = []
    if args.mode != "library":
        runs += [
            (n, {**o, "n_outputs_max": o.get("n_seq_max", 1)})
            for n, o in build_grid(names, args.quick, server=True)
        ]
    if args.mode != "server":
        runs += build_grid(names, args.quick, server=False)
    for name, over in runs:
        cfg = {**DEFAULTS, **over}
        est = estimate_bytes(models[name], cfg)
        size = sum(t.nbytes for t in make_gguf.text_tensors(models[name]))
        if est > RAM_BUDGET and not cfg["no_alloc"]:
            cfg["no_alloc"] = True
            cfg["no_alloc_reason"] = (
                f"estimated {est / 2**30:.1f} GiB > {RAM_BUDGET / 2**30:.0f} GiB budget"
            )
        elif cfg["weights"] == "bf16" and not cfg["no_alloc"] and over.get("flash_attn"):
            # the grid's BF16 runs are sized by the reservation path (the same bytes, checked by
            # the real runs with flash_attn auto and by the 9B cross-check), which keeps the
            # 300-run grid to minutes on 2 cores
            cfg["no_alloc"] = True
            cfg["no_alloc_reason"] = "BF16 grid run: reservation path (same bytes as a real load)"
        elif size > REAL_MAX_FILE and not cfg["no_alloc"] and cfg["weights"] == "bf16":
            cfg["no_alloc"] = True
            cfg["no_alloc_reason"] = (
                f"BF16 file {size / 1e9:.0f} GB: mmap MAP_POPULATE of the hole too slow"
            )
        reason = cfg.pop("no_alloc_reason", None)
        rec = run_config(models[name], cfg, args.timeout)
        if reason:
            rec["no_alloc_reason"] = reason
        rec["estimate_bytes"] = est
        (skipped if "error" in rec else records).append(rec)
        b = rec.get("buffers_bytes", {})
        print(
            f"{name:18s} {json.dumps(over):70s} na={int(cfg['no_alloc'])} "
            + (
                " ".join(f"{k}={v / MIB:.2f}" for k, v in b.items() if "_" not in k)
                or rec.get("error", "")
            )
            + f" [{rec.get('seconds', '?')}s]",
            file=sys.stderr,
            flush=True,
        )
    result = {
        "llama_cpp_python": "0.3.36",
        "llama_cpp_commit": llama_cpp_commit(),
        "generator": "benchmarks/llamacpp/measure_memory.py (zero-weight GGUFs from make_gguf.py)",
        "machine": "CPU only (x86_64, 2 cores); n_gpu_layers=0, use_mmap=true, no warm-up",
        "notes": [
            "buffers_bytes: exact bytes where listed in exact_keys "
            "(llama_get_memory_breakdown via the "
            "qf_breakdown shim; output from n_vocab*n_seq_max*4 checked against the log), "
            "otherwise the logged MiB * 1048576",
            "model = all model buffers (CPU_Mapped mmap of the file + CPU_REPACK etc.); "
            "kv = attention KV cache; rs = Gated DeltaNet recurrent state (conv + ssm)",
            "no_alloc=true: llama.cpp's dry reservation path (model params no_alloc), "
            "nothing allocated",
            "max_rss_bytes: running max RSS over child processes, only set when it increased",
        ],
        "seconds_total": round(time.time() - t_all, 1),
        "records": records,
        "failed_or_skipped": skipped,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out} ({len(records)} records, {len(skipped)} failed)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
