"""Measure what llama.cpp's vision encoder (mtmd / clip) allocates for Qwen3.5 mmproj GGUFs.

Why: a vision-enabled Qwen3.5 run needs the mmproj weights and a clip compute buffer on top of
the text model. The compute buffer depends on the image size and on llama.cpp's defaults, so
we read it from the runtime instead of deriving it.

For each model, in a fresh subprocess:

1. **Exact bytes.** A small C++ shim, compiled here into the rig, calls
   ``mtmd_get_memory_usage()``. This is the unstable C++ API that ``llama_params_fit`` uses,
   and it builds a no_alloc mtmd context. We call it twice: with ``warmup=false`` it returns
   the weights only, and with ``warmup=true`` the weights plus the warm-up compute reservation.
   The compute buffer is the difference.
2. **Real load.** ``mtmd_init_from_file`` (llama-cpp-python's ``mtmd_cpp`` bindings on our
   libmtmd), default parameters on the CPU, warm-up on. The clip log lines (model size, warm-up
   image size, "compute buffer size", flash attention) are kept verbatim.
3. **Larger images.** The Qwen-VL warm-up uses a fixed 46x46-token image (1472x1472 px), not
   the 4096-token default maximum. For each probe size the shim makes a fresh clip context
   (``clip_init``, warm-up off) and encodes one image of that size, already preprocessed
   (sides are multiples of patch_size * n_merge = 32). The encode's first reservation is sized
   for that image. A ``cb_eval`` callback stops the graph after its first node, so almost
   nothing is computed. ``clip_get_mem_usage`` after minus before gives the exact compute
   buffer, and the log's MiB value is kept next to it.

The text model is loaded with ``no_alloc`` (no weights are read). mtmd needs it only for
n_embd, the rope type and the vocabulary.

Usage::

    cmake --build /work/rigs/llamacpp/build --target mtmd -j 2   # once, ~15 min on 2 cores
    python measure_mmproj.py             # -> tests/fixtures/measured/llamacpp_mmproj.json
    python measure_mmproj.py --models qwen3.5-0.8b --out /tmp/mmproj.json
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RIG = Path("/work/rigs/llamacpp")
LIB_DIR = RIG / "build/bin"
VENDOR = RIG / "src/llama_cpp_python-0.3.36/vendor/llama.cpp"
SHIM = RIG / "build/libqf_mtmd_mem.so"
GGUF_DIR = RIG / "gguf"
OUT = REPO / "tests/fixtures/measured/llamacpp_mmproj.json"
MODELS = ["qwen3.5-0.8b", "qwen3.5-2b", "qwen3.5-4b", "qwen3.5-9b", "qwen3.5-35b-a3b"]
PROBE_SIDES = [448, 1024, 1472, 2048]  # square images, pixels per side
MIB = 1024 * 1024

# Our code, compiled against the vendored headers. mtmd_get_memory_usage returns a std::map,
# which ctypes cannot call, so this wraps it as a C function and sums the map over devices.
SHIM_SRC = r"""
#include "mtmd.h"
#include "clip.h"
#include "clip-impl.h"
#include <map>
#include <vector>

static unsigned long long sum_map(const std::map<ggml_backend_dev_t, size_t> & m) {
    unsigned long long s = 0;
    for (auto & kv : m) s += kv.second;
    return s;
}

// mtmd_get_memory_usage (no_alloc context): weights (+ warm-up compute if warmup != 0)
extern "C" int qf_mtmd_mem(const char * fname, int warmup, int flash_attn, int n_threads,
                           unsigned long long * total) {
    mtmd_context_params p = mtmd_context_params_default();
    p.use_gpu = false;
    p.warmup = warmup != 0;
    p.flash_attn_type = (enum llama_flash_attn_type) flash_attn;
    p.n_threads = n_threads;
    auto m = mtmd_get_memory_usage(fname, p);
    *total = sum_map(m);
    return (int) m.size();
}

static bool stop_after_first(ggml_tensor *, bool ask, void *) { return ask; }

// fresh clip context without warm-up; encode one nx x ny (already preprocessed) image, so the
// first reservation is sized for it; the eval callback stops the graph after its first node.
// out: [0] weights, [1] weights + compute, [2] output tokens
extern "C" int qf_clip_probe(const char * fname, int nx, int ny, int flash_attn, int n_threads,
                             unsigned long long * out) {
    clip_context_params p {};
    p.use_gpu = false;
    p.flash_attn_type = (clip_flash_attn_type) flash_attn;
    p.image_min_tokens = -1;
    p.image_max_tokens = -1;
    p.warmup = false;
    p.cb_eval = stop_after_first;
    clip_init_result r = clip_init(fname, p);
    if (!r.ctx_v) return 0;
    out[0] = sum_map(clip_get_mem_usage(r.ctx_v));
    clip_image_f32_batch batch;
    clip_image_f32 img;
    img.set_size({nx, ny}, false, false);
    out[2] = (unsigned long long) clip_n_output_tokens(r.ctx_v, &img);
    batch.entries.push_back(img);
    std::vector<float> embd;  // empty: clip skips the copy of the (unfinished) output
    bool ok = clip_image_batch_encode(r.ctx_v, n_threads, &batch, embd);
    out[1] = sum_map(clip_get_mem_usage(r.ctx_v));
    clip_free(r.ctx_v);
    if (r.ctx_a) clip_free(r.ctx_a);
    return ok ? 1 : 2;
}
"""

LOG_KEEP = re.compile(
    r"clip_|mtmd_|load_hparams|warmup|compute buffer|model size|flash attention|image_m(in|ax)_"
    r"|projector|n_embd|n_layer|patch_size|n_merge|CPU_Mapped|CPU model buffer|alloc_compute"
)
COMPUTE_RE = re.compile(r"(\S+)\s+compute buffer size\s*=\s*([\d.]+) MiB")
MODEL_SIZE_RE = re.compile(r"model size:\s*([\d.]+) MiB")
WARMUP_RE = re.compile(r"warmup with image size = (\d+) x (\d+)")
FA_RE = re.compile(r"flash attention is (\w+)")


def build_shim() -> Path:
    """Compile the exact-bytes shim once (needs libmtmd from the cmake build)."""
    if SHIM.exists():
        return SHIM
    if not (LIB_DIR / "libmtmd.so").exists():
        raise SystemExit(
            f"{LIB_DIR}/libmtmd.so missing: cmake --build {RIG}/build --target mtmd -j 2"
        )
    src = SHIM.with_suffix(".cpp")
    src.write_text(SHIM_SRC)
    subprocess.run(
        [
            "g++", "-O2", "-std=c++17", "-shared", "-fPIC", str(src), "-o", str(SHIM),
            f"-I{VENDOR}/tools/mtmd", f"-I{VENDOR}/include", f"-I{VENDOR}/ggml/include",
            f"-L{LIB_DIR}", "-lmtmd", "-lllama", "-lggml-base", f"-Wl,-rpath,{LIB_DIR}",
        ],
        check=True,
    )  # fmt: skip
    return SHIM


# ----------------------------------------------------------------------------------------------
# child
# ----------------------------------------------------------------------------------------------


def _load_shim() -> ctypes.CDLL:
    shim = ctypes.CDLL(str(SHIM))
    ull_p = ctypes.POINTER(ctypes.c_ulonglong)
    shim.qf_mtmd_mem.restype = ctypes.c_int
    shim.qf_mtmd_mem.argtypes = [ctypes.c_char_p] + [ctypes.c_int] * 3 + [ull_p]
    shim.qf_clip_probe.restype = ctypes.c_int
    shim.qf_clip_probe.argtypes = [ctypes.c_char_p] + [ctypes.c_int] * 4 + [ull_p]
    return shim


def _run_one(cfg: dict) -> dict:
    """One model: exact bytes via the shim, a real default mtmd load, probes (subprocess)."""
    os.environ.setdefault("LLAMA_CPP_LIB_PATH", str(LIB_DIR))
    os.environ.setdefault("MTMD_CPP_LIB", str(LIB_DIR))
    import llama_cpp as lc
    import llama_cpp.mtmd_cpp as mt

    def mark(tag: str) -> None:
        print(f"@@QF {tag}", file=sys.stderr, flush=True)  # splits the log per phase

    shim = _load_shim()
    mmproj = cfg["mmproj"].encode()
    exact: dict = {}
    for warm in (0, 1):
        total = ctypes.c_ulonglong()
        n = shim.qf_mtmd_mem(mmproj, warm, -1, cfg["threads"], ctypes.byref(total))
        exact["weights_plus_compute" if warm else "weights"] = total.value if n else None
    if None not in exact.values():
        exact["compute_warmup"] = exact["weights_plus_compute"] - exact["weights"]
    res: dict = {"exact": exact}

    lc.llama_backend_init()
    mp = lc.llama_model_default_params()
    mp.n_gpu_layers = 0
    mp.no_alloc = True
    mp.load_mode = lc.LLAMA_LOAD_MODE_NONE
    text = lc.llama_model_load_from_file(cfg["text"].encode(), mp)
    if not text:
        return {**res, "error": "text model load failed"}
    p = mt.mtmd_context_params_default()
    p.use_gpu = False
    p.n_threads = cfg["threads"]
    p.print_timings = False
    res["default_params"] = {
        "flash_attn_type": p.flash_attn_type,
        "warmup": bool(p.warmup),
        "image_min_tokens": p.image_min_tokens,
        "image_max_tokens": p.image_max_tokens,
        "batch_max_tokens": p.batch_max_tokens,
    }
    mark("default")
    t0 = time.time()
    ctx = mt.mtmd_init_from_file(mmproj, text, p)
    if not ctx:
        return {**res, "error": "mtmd_init_from_file failed"}
    res["seconds_init_default"] = round(time.time() - t0, 2)
    mt.mtmd_free(ctx)
    lc.llama_model_free(text)

    res["probes"] = []
    for side in cfg["probe_sides"]:
        mark(f"probe {side}")
        out = (ctypes.c_ulonglong * 3)()
        rc = shim.qf_clip_probe(mmproj, side, side, -1, cfg["threads"], out)
        res["probes"].append(
            {
                "image_px": [side, side],
                "n_tokens": out[2],
                "weights": out[0],
                "compute": out[1] - out[0],
                "encode_rc": rc,
            }
        )
    mark("end")
    return res


# ----------------------------------------------------------------------------------------------
# parent
# ----------------------------------------------------------------------------------------------


def _phase_logs(stderr: str) -> dict[str, list[str]]:
    phases: dict[str, list[str]] = {}
    cur = "pre"
    for ln in stderr.splitlines():
        if ln.startswith("@@QF "):
            cur = ln[5:].strip()
            continue
        phases.setdefault(cur, []).append(ln.rstrip())
    return phases


def measure(name: str, timeout: int) -> dict:
    mmproj = GGUF_DIR / f"mmproj-{name}-F16.gguf"
    text = GGUF_DIR / f"{name}-BF16.gguf"
    for path, flag in ((mmproj, ["--mmproj"]), (text, [])):
        if not path.exists():
            subprocess.run(
                [sys.executable, str(HERE / "make_gguf.py"), name, *flag, "--out-dir",
                 str(GGUF_DIR)],
                check=True,
            )  # fmt: skip
    cfg = {"mmproj": str(mmproj), "text": str(text), "threads": 2, "probe_sides": PROBE_SIDES}
    env = {**os.environ, "LLAMA_CPP_LIB_PATH": str(LIB_DIR), "MTMD_CPP_LIB": str(LIB_DIR)}
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(cfg)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    try:
        res = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        res = {"error": f"child rc={proc.returncode}"}
    phases = _phase_logs(proc.stderr)
    if "error" in res:
        res["stderr_tail"] = proc.stderr[-4000:]

    import gguf

    reader = gguf.GGUFReader(mmproj)
    rec: dict = {
        "model": name,
        "mmproj_file": mmproj.name,
        "file_bytes": mmproj.stat().st_size,
        "tensor_bytes": int(sum(int(t.n_bytes) for t in reader.tensors)),
        "n_tensors": len(reader.tensors),
        **res,
    }
    default = phases.get("default", [])
    text_default = "\n".join(default)
    rec["default"] = {
        "model_size_mib_logged": _first_float(MODEL_SIZE_RE, text_default),
        "compute_buffer_mib_logged": {m[1]: float(m[2]) for m in COMPUTE_RE.finditer(text_default)},
        "warmup_image": [int(x) for x in WARMUP_RE.search(text_default).groups()]
        if WARMUP_RE.search(text_default)
        else None,
        "flash_attention": (FA_RE.findall(text_default) or [None])[-1],
        "log": [ln for ln in default if LOG_KEEP.search(ln) and "tensor[" not in ln],
    }
    for probe in rec.get("probes", []):
        lines = phases.get(f"probe {probe['image_px'][0]}", [])
        txt = "\n".join(lines)
        probe["compute_buffer_mib_logged"] = {m[1]: float(m[2]) for m in COMPUTE_RE.finditer(txt)}
        probe["flash_attention"] = (FA_RE.findall(txt) or [None])[-1]
        probe["log"] = [ln for ln in lines if COMPUTE_RE.search(ln) or FA_RE.search(ln)]
    rec["seconds_wall"] = round(time.time() - t0, 1)
    return rec


def _first_float(rx: re.Pattern, text: str) -> float | None:
    m = rx.search(text)
    return float(m[1]) if m else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--one", help="internal: run one JSON config and print JSON")
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(_run_one(json.loads(args.one))))
        return 0

    sys.path.insert(0, str(HERE))
    from gguf_sizes import llama_cpp_commit

    build_shim()
    t0 = time.time()
    records = []
    for name in args.models:
        rec = measure(name, args.timeout)
        records.append(rec)
        ex = rec.get("exact", {})
        print(
            f"{name:16s} weights {ex.get('weights')}  compute(warmup) {ex.get('compute_warmup')}"
            f"  logged {rec['default']['compute_buffer_mib_logged']}  probes "
            + ", ".join(
                f"{p['image_px'][0]}px/{p['n_tokens']}tok:{p['compute']}"
                for p in rec.get("probes", [])
            )
            + (f"  ERROR {rec['error']}" if "error" in rec else ""),
            flush=True,
        )
    out = {
        "llama_cpp_commit": llama_cpp_commit(),
        "backend": "CPU (ggml-cpu), mtmd/clip from the vendored tree, use_gpu=false, 2 threads",
        "defaults": "mtmd_context_params_default(): flash_attn auto, image_min/max_tokens from "
        "the projector defaults (qwen3vl_merger: 8..4096 merged tokens), warmup on",
        "method": {
            "exact": "mtmd_get_memory_usage() (no_alloc context) with warmup=false -> weights; "
            "warmup=true -> weights + warm-up compute; compute_warmup = difference (bytes)",
            "default": "real mtmd_init_from_file with defaults; values parsed from clip's log",
            "probes": "clip_init with warmup=false, then clip_image_batch_encode of one "
            "image_px (already preprocessed) image: the first reservation is sized for it; "
            "a cb_eval callback stops the graph after its first node; compute = "
            "clip_get_mem_usage after - before (bytes)",
        },
        "records": records,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
