"""What a running runtime on this machine loaded, read from its own local HTTP API (and log).

Why: after a user starts a model, the runtime's own figures say whether it took what qwenfit
estimated. Only loopback addresses are contacted, so nothing leaves the machine. Sources:
- llama-server (tools/server/README.md): `GET /props` (`model_path`, `total_slots`,
  `default_generation_settings.n_ctx`, `build_info`), `GET /slots` (per-slot `n_ctx`), `GET
  /metrics` (Prometheus text, with `--metrics`); its `-v` log, when given, has every buffer.
- Ollama (https://docs.ollama.com/api/ps, https://docs.ollama.com/api/show): `GET /api/ps`
  (`size`, `size_vram`, `context_length`, `details.quantization_level`), `POST /api/show`.
- vLLM (https://docs.vllm.ai/en/latest/usage/metrics.html, the OpenAI-compatible server):
  `GET /v1/models` (`id`, `root`, `max_model_len`), `GET /metrics` (`vllm:cache_config_info`
  with `block_size` and `num_gpu_blocks`).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qwenfit.adapters import LLAMACPP, OLLAMA, VLLM
from qwenfit.errors import QwenfitError, UsageError
from qwenfit.verify.logparse import MIB, ServerLog

VerifyRuntime = Literal["llama.cpp", "ollama", "vllm"]
DEFAULT_URLS: dict[str, str] = {
    LLAMACPP: "http://127.0.0.1:8080",
    OLLAMA: "http://127.0.0.1:11434",
    VLLM: "http://127.0.0.1:8000",
}
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
MAX_RESPONSE = 8 << 20  # bytes read from any one response


class Unreachable(QwenfitError):
    """The runtime did not answer at the address given (exit 1)."""


class Observed(BaseModel):
    """What the runtime reports it loaded, and the bytes it reports, by part."""

    model_config = ConfigDict(extra="forbid")

    runtime: VerifyRuntime
    url: str
    model_ref: str | None = Field(
        None, description="Model path, tag or id as the runtime names it."
    )
    quant: str | None = None
    context: int | None = Field(None, description="Tokens per sequence (slot).")
    parallel: int | None = None
    kv_cache: str | None = None
    ubatch: int | None = None
    flash_attn: bool | None = None
    build: int | None = Field(None, description="llama.cpp build number, when reported.")
    measured_bytes: dict[str, int] = Field(
        default_factory=dict, description="Bytes the runtime reports, by qwenfit part name."
    )
    total_bytes: int | None = Field(None, description="What the runtime reports in all.")
    device_bytes: int | None = Field(None, description="On GPUs (Ollama size_vram, or NVML).")
    kv_capacity_tokens: int | None = Field(None, description="vLLM: KV blocks x block size.")
    pid: int | None = None
    notes: list[str] = Field(default_factory=list)


def check_url(url: str) -> str:
    """The base URL, refused unless it is http on a loopback address."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or (parts.hostname or "") not in {h.strip("[]") for h in LOOPBACK}:
        raise UsageError(
            f"invalid --url {url!r}: must be http://127.0.0.1:PORT or http://localhost:PORT "
            "(verify reads a runtime on this machine only)"
        )
    return url.rstrip("/")


def fetch(url: str, body: dict[str, Any] | None = None, timeout: float = 5.0) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return bytes(r.read(MAX_RESPONSE))
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise Unreachable(f"{url} did not answer: {getattr(e, 'reason', e)}") from None


def fetch_json(url: str, body: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
    raw = fetch(url, body, timeout)
    try:
        return json.loads(raw)
    except ValueError:
        raise Unreachable(f"{url} did not answer with JSON") from None


_QUANT = re.compile(
    r"(?i)(?<![a-z0-9])(bf16|f16|f32|q8_0|q[2-6]_k(?:_[sml])?|q4_[01]|iq\d_\w+?)(?=\W|$)"
)


def quant_of(name: str | None) -> str | None:
    m = _QUANT.search(name or "")
    return m[1].lower() if m else None


def llama_server(url: str, log: ServerLog | None = None) -> Observed:
    props = fetch_json(f"{url}/props")
    obs = Observed(runtime=LLAMACPP, url=url, model_ref=props.get("model_path"))
    obs.quant = quant_of(obs.model_ref)
    slots = props.get("total_slots")
    n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx")
    obs.parallel = int(slots) if isinstance(slots, int) else None
    obs.context = int(n_ctx) if isinstance(n_ctx, int) else None
    m = re.match(r"b?(\d+)", str(props.get("build_info") or ""))
    obs.build = int(m[1]) if m and m[1] != "0" else None
    if log is None:
        obs.notes.append("no --log: llama-server reports no buffer sizes over HTTP")
        return obs
    t = log.target
    obs.build = log.build or obs.build
    obs.parallel = t.setting("n_seq_max") or obs.parallel
    if t.setting("n_ctx_seq"):
        obs.context = t.setting("n_ctx_seq")
    obs.ubatch = t.setting("n_ubatch")
    fa = t.settings.get("flash_attn")
    obs.flash_attn = None if fa is None else fa in ("enabled", "on", "1", "true")
    obs.kv_cache = t.type_k
    measured = {
        "weights": log.model_total_mib(),
        "kv_cache": t.kv_mib,
        "linear_state": t.rs_mib,
        "compute": t.output_mib + (t.compute_exact_mib or t.compute_mib),
    }
    if log.draft is not None:
        d = log.draft
        measured["mtp"] = d.kv_mib + d.output_mib + (d.compute_exact_mib or d.compute_mib)
    if log.vision_model_mib is not None:
        measured["vision"] = log.vision_model_mib
    obs.measured_bytes = {k: round(v * MIB) for k, v in measured.items() if v}
    obs.total_bytes = sum(obs.measured_bytes.values())
    return obs


def ollama(url: str) -> Observed:
    running = fetch_json(f"{url}/api/ps").get("models") or []
    if not running:
        raise Unreachable(f"{url}/api/ps lists no running model: load one first")
    m = running[0]
    obs = Observed(runtime=OLLAMA, url=url, model_ref=m.get("model") or m.get("name"))
    details = m.get("details") or {}
    obs.quant = (details.get("quantization_level") or "").lower() or quant_of(obs.model_ref)
    obs.context = m.get("context_length")
    obs.parallel = 1
    obs.total_bytes = m.get("size")
    obs.device_bytes = m.get("size_vram")
    if len(running) > 1:
        obs.notes.append(f"{len(running)} models loaded; the first ({obs.model_ref}) is checked")
    return obs


_CACHE_INFO = re.compile(r"^vllm:cache_config_info\{(?P<labels>[^}]*)\}", re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def vllm(url: str) -> Observed:
    models = fetch_json(f"{url}/v1/models").get("data") or []
    if not models:
        raise Unreachable(f"{url}/v1/models lists no model")
    m = models[0]
    obs = Observed(runtime=VLLM, url=url, model_ref=m.get("root") or m.get("id"))
    obs.context = m.get("max_model_len")
    obs.quant = quant_of(obs.model_ref)
    try:
        text = fetch(f"{url}/metrics").decode(errors="replace")
    except Unreachable:
        text = ""
    info = _CACHE_INFO.search(text)
    if info:
        labels = dict(_LABEL.findall(info["labels"]))
        blocks, size = labels.get("num_gpu_blocks"), labels.get("block_size")
        if blocks and size and blocks.isdigit() and size.isdigit():
            obs.kv_capacity_tokens = int(blocks) * int(size)
        dtype = labels.get("cache_dtype")
        obs.kv_cache = None if dtype in (None, "auto") else dtype
    else:
        obs.notes.append("no vllm:cache_config_info in /metrics")
    return obs


def read_runtime(runtime: str, url: str, log: ServerLog | None = None) -> Observed:
    base = check_url(url)
    if runtime == LLAMACPP:
        return llama_server(base, log)
    if runtime == OLLAMA:
        return ollama(base)
    if runtime == VLLM:
        return vllm(base)
    raise UsageError(f"invalid --runtime {runtime!r}: must be llama.cpp, ollama or vllm")
