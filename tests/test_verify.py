"""`qwenfit verify` against local servers that replay Ollama / vLLM responses (shapes from
their public API docs, tests/fixtures/replay/) and against llama.cpp's own log lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from serve_support import LoopbackHTTP, allow_loopback

from qwenfit import estimate
from qwenfit.cli import main
from qwenfit.errors import UsageError
from qwenfit.hardware.nvml import process_memory
from qwenfit.verify.compare import verify
from qwenfit.verify.logparse import parse
from qwenfit.verify.observe import Unreachable, check_url, quant_of, read_runtime
from qwenfit.verify.processes import device_bytes

HERE = Path(__file__).parent
REPLAY = HERE / "fixtures" / "replay"
MEASURED = HERE / "fixtures" / "measured"


class Replay(LoopbackHTTP):
    """A loopback HTTP server answering fixed paths with canned bodies."""

    def __init__(self, routes: dict[str, tuple[str, bytes]]) -> None:
        routes_ = routes

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                path = self.path.split("?")[0]
                if path not in routes_:
                    self.send_error(404)
                    return
                ctype, body = routes_[path]
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler)


def _json(value: Any) -> tuple[str, bytes]:
    return "application/json", json.dumps(value).encode()


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    allow_loopback(monkeypatch)


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[Replay] = []

    def start(routes: dict[str, tuple[str, bytes]]) -> str:
        servers.append(Replay(routes))
        return servers[-1].url

    yield start
    for s in servers:
        s.close()


def _ollama_routes(size: int, size_vram: int) -> dict[str, tuple[str, bytes]]:
    doc = json.loads((REPLAY / "ollama_ps.json").read_text())
    ps = doc["ps"]
    ps["models"][0].update(size=size, size_vram=size_vram)
    return {"/api/ps": _json(ps), "/api/generate": _json(doc["generate"])}


def _ollama_estimate() -> Any:
    return estimate("9b", runtime="ollama", quant="q4_k_m", context=16384)


@pytest.mark.parametrize(
    ("scale", "verdict", "code"), [(1.0, "ok", 0), (0.97, "ok", 0), (1.05, "over", 3)]
)
def test_ollama_replay(serve: Any, scale: float, verdict: str, code: int) -> None:
    est = _ollama_estimate()
    url = serve(_ollama_routes(int(est.load_bytes * scale), int(est.gpu_bytes * scale)))
    obs = read_runtime("ollama", url)
    assert (obs.model_ref, obs.quant, obs.context) == ("qwen3.5:9b", "q4_k_m", 16384)
    v = verify(obs)
    assert v.estimate.model == "qwen3.5-9b" and v.estimate.load_bytes == est.load_bytes
    assert v.verdict == verdict
    result = CliRunner().invoke(
        main,
        ["verify", "--runtime", "ollama", "--url", url, "--vram", "0", "--ram", "64GiB", "--json"],
    )
    assert result.exit_code in (0, 3)  # a CPU machine lays it out differently: only the shape
    doc = json.loads(result.output)
    assert doc["verify"]["observed"]["runtime"] == "ollama"
    schema = Path(__file__).resolve().parents[1] / "docs" / "schema" / "verify.schema.json"
    jsonschema.validate(doc, json.loads(schema.read_text()))  # the v2 envelope, as printed


def test_ollama_cli_exit_codes_and_bench(serve: Any) -> None:
    est = _ollama_estimate()
    args = ["verify", "--runtime", "ollama", "--gpu", "RTX 4090", "--ram", "64GiB"]
    big = serve(_ollama_routes(int(est.load_bytes * 1.2), int(est.gpu_bytes * 1.2)))
    result = CliRunner().invoke(main, [*args, "--url", big])
    assert result.exit_code == 3, result.output
    assert "over" in result.output and "total" in result.output
    ok = serve(_ollama_routes(est.load_bytes, est.gpu_bytes))
    result = CliRunner().invoke(main, [*args, "--url", ok, "--bench"])
    assert result.exit_code == 0, result.output
    assert "40.0 tok/s measured" in result.output  # 32 tokens in 0.8 s
    assert "time to first token: 0.25 s measured" in result.output


def _vllm_routes(blocks: int, block: int) -> dict[str, tuple[str, bytes]]:
    doc = json.loads((REPLAY / "vllm.json").read_text())
    metrics = doc["metrics"].replace("BLOCKS", str(blocks)).replace("BLOCK", str(block))
    return {"/v1/models": _json(doc["models"]), "/metrics": ("text/plain", metrics.encode())}


@pytest.mark.parametrize(("blocks", "verdict"), [(100, "ok"), (20, "over")])
def test_vllm_replay_kv_capacity(serve: Any, blocks: int, verdict: str) -> None:
    url = serve(_vllm_routes(blocks, 640))
    obs = read_runtime("vllm", url)
    assert obs.context == 32768 and obs.kv_capacity_tokens == blocks * 640
    v = verify(obs, quant="bf16")
    row = next(r for r in v.rows if r.part == "kv tokens")
    assert row.estimated_bytes == 32768 and v.verdict == verdict


def test_unreachable_is_exit_1() -> None:
    result = CliRunner().invoke(main, ["verify", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "did not answer" in result.output
    with pytest.raises(Unreachable):
        read_runtime("vllm", "http://127.0.0.1:9")


@pytest.mark.parametrize("url", ["http://10.0.0.1:8080", "https://127.0.0.1:8080", "ftp://x"])
def test_only_loopback(url: str) -> None:
    with pytest.raises(UsageError, match="this machine only"):
        check_url(url)
    assert CliRunner().invoke(main, ["verify", "--url", url]).exit_code == 2


def test_quant_from_names() -> None:
    assert quant_of("/m/Qwen3.5-9B-Q4_K_M.gguf") == "q4_k_m"
    assert quant_of("qwen3.5-0.8b-BF16.gguf") == "bf16"
    assert quant_of("Qwen/Qwen3.5-9B") is None


def test_old_build_log_parses() -> None:
    """llama.cpp's own lines (build 11312, tests/fixtures/measured/llamacpp_memory.json)."""
    rec = json.loads((MEASURED / "llamacpp_memory.json").read_text())["records"][0]
    log = parse(rec["log"])
    t = log.target
    assert (t.kv_mib, t.rs_mib, t.output_mib, t.compute_mib) == (0.0, 19.27, 0.95, 46.16)
    assert (t.kv_cells, t.kv_layers, t.type_k, t.rs_layers) == (4096, 6, "f16", 24)
    assert t.setting("n_outputs_max") == 1 and t.setting("n_ctx") == 4096


def test_version_lines() -> None:
    new = parse(["version: 0.6.0-dev (build 11434, commit unknown)"])
    old = parse(["version: 9776 (ac4105d68)", "built with GNU 11.4.0 for Linux x86_64"])
    assert (new.build, new.commit, old.build, old.commit) == (11434, "unknown", 9776, "ac4105d68")


class _Proc:
    def __init__(self, pid: int, used: int | None) -> None:
        self.pid, self.usedGpuMemory = pid, used


class _FakeNVML:
    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[_Proc]:
        return (
            [_Proc(11, 5 << 30), _Proc(12, None), _Proc(13, 1 << 30)]
            if h == 0
            else [_Proc(11, 2 << 30)]
        )

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: int) -> list[_Proc]:
        return [_Proc(11, 5 << 30)] if h == 0 else []


def test_nvml_per_process() -> None:
    assert process_memory(_FakeNVML()) == {11: 7 << 30, 13: 1 << 30}
    names = {11: "/usr/bin/llama-server -m x.gguf", 13: "python -m vllm serve"}
    assert device_bytes("llama.cpp", _FakeNVML(), names) == 7 << 30
    assert device_bytes("vllm", _FakeNVML(), names) == 1 << 30
    assert device_bytes("ollama", _FakeNVML(), names) is None
