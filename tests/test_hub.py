"""Hub references, offline-first: a recorded Hub API served from 127.0.0.1, and the disk cache.

The suite's conftest refuses every socket connection; these tests put back a connect that
allows loopback only, point HF_ENDPOINT at a local http.server, and keep HF_HOME and
QWENFIT_CACHE_DIR inside tmp_path.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import gguf
import pytest
import qwen35_tensors as q
from conftest import assert_weights_are_the_files
from serve_support import LoopbackHTTP, allow_loopback
from test_checkpoints import TINY, mg

from qwenfit import estimate
from qwenfit.errors import QwenfitError, UsageError
from qwenfit.specs.checkpoints import hub, refresh
from qwenfit.specs.checkpoints.resolve import resolve_model
from qwenfit.specs.table import SpecTable

FIXTURES = Path(__file__).parent / "fixtures" / "hub"
ABLITERATED = "tester/Qwen3.5-0.8B-abliterated"
GGUF_REPO = "tester/Qwen3.5-Tiny-GGUF"


class FakeHub:
    """Files by URL path; serves /api/models/<repo> and /<repo>/resolve/<rev>/<file> with Range."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.sizes: dict[str, int] = {}  # virtual size (sparse files: the rest reads as zeros)
        self.infos: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []

    def add_repo(self, info: dict[str, Any], files: dict[str, tuple[bytes, int]]) -> None:
        repo = info["id"]
        for sib in info["siblings"]:
            if sib["rfilename"] in files:
                sib["size"] = files[sib["rfilename"]][1]
        self.infos[repo] = info
        for name, (data, size) in files.items():
            self.files[f"/{repo}/resolve/{info['sha']}/{name}"] = data
            self.sizes[f"/{repo}/resolve/{info['sha']}/{name}"] = size

    def handler(self) -> type[BaseHTTPRequestHandler]:
        hub_ = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, headers: dict[str, str], head: bool) -> None:
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _serve(self, head: bool) -> None:
                path = self.path.split("?", 1)[0]
                hub_.requests.append(f"{self.command} {path}")
                if path.startswith("/api/models/"):
                    repo = path.removeprefix("/api/models/").split("/revision/")[0]
                    if repo not in hub_.infos:
                        body = json.dumps({"error": "Repository not found"}).encode()
                        headers = {"X-Error-Code": "RepoNotFound"}
                        return self._send(404, body, headers, head)
                    body = json.dumps(hub_.infos[repo]).encode()
                    return self._send(200, body, {"Content-Type": "application/json"}, head)
                key = self._resolve(path)
                if key is None:
                    headers = {"X-Error-Code": "EntryNotFound"}
                    return self._send(404, b"not found", headers, head)
                data, size = hub_.files[key], hub_.sizes[key]
                commit = key.split("/resolve/")[1].split("/")[0]
                headers = {"X-Repo-Commit": commit, "ETag": f'"{hash(data) & 0xFFFFFFFF:x}"'}
                rng = self.headers.get("Range")
                if rng:
                    start, _, end = rng.removeprefix("bytes=").partition("-")
                    lo, hi = int(start), min(int(end or size - 1), size - 1)
                    body = (data + b"\0" * max(0, hi + 1 - len(data)))[lo : hi + 1]
                    headers["Content-Range"] = f"bytes {lo}-{hi}/{size}"
                    return self._send(206, body, headers, head)
                if size > len(data):
                    return self._send(403, b"no full downloads of weights here", {}, head)
                return self._send(200, data, headers, head)

            def _resolve(self, path: str) -> str | None:
                if path in hub_.files:
                    return path
                for repo, info in hub_.infos.items():  # revision "main" -> the repo's sha
                    prefix = f"/{repo}/resolve/main/"
                    if path.startswith(prefix):
                        key = f"/{repo}/resolve/{info['sha']}/{path.removeprefix(prefix)}"
                        return key if key in hub_.files else None
                return None

            def do_GET(self) -> None:
                self._serve(head=False)

            def do_HEAD(self) -> None:
                self._serve(head=True)

        return Handler


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    allow_loopback(monkeypatch)
    fake = FakeHub()
    server = LoopbackHTTP(fake.handler())
    for var in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_TOKEN",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("QWENFIT_CACHE_DIR", str(tmp_path / "qwenfit-cache"))
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    yield fake
    server.close()


def _abliterated(fake: FakeHub, table: SpecTable, config: dict[str, Any] | None = None) -> None:
    a = table.get("0.8b").model_dump(mode="json")["architecture"]
    prefix, data = q.header_bytes(
        q.text_tensors(a) + q.vision_tensors(a["vision"]) + q.mtp_tensors(a)
    )
    cfg = json.dumps(config or q.nested_config(a)).encode()
    info = json.loads((FIXTURES / "model_info_abliterated.json").read_text())
    fake.add_repo(
        info, {"config.json": (cfg, len(cfg)), "model.safetensors": (prefix, len(prefix) + data)}
    )


def _gguf_repo(fake: FakeHub, tmp_path: Path) -> None:
    model = {"name": "tiny", "model_type": "qwen3_5", "architecture": TINY}
    files = {}
    tmp_path.mkdir()
    qt, ft = gguf.GGMLQuantizationType, gguf.LlamaFileType
    for name, wt, ftype in (
        ("Qwen3.5-Tiny-Q4_K_M.gguf", qt.Q4_K, ft.MOSTLY_Q4_K_M),
        ("Qwen3.5-Tiny-UD-Q5_K_XL.gguf", qt.Q5_K, ft.MOSTLY_Q5_K_M),
    ):
        path = tmp_path / name
        w = gguf.GGUFWriter(path, "qwen35")
        mg._add_text_kv(w, model, False, ftype)
        size = mg.write_sparse(w, path, mg.text_tensors(model, wt=wt))
        with path.open("rb") as f:
            files[name] = (f.read(65536), size)  # the header; the data stays a hole
    info = json.loads((FIXTURES / "model_info_gguf.json").read_text())
    fake.add_repo(info, files)


def test_hub_id_offline_without_cache_asks_for_online(table: SpecTable, fake_hub: FakeHub) -> None:
    with pytest.raises(UsageError) as e:
        resolve_model(ABLITERATED, table)
    assert "pass --online to read it from the Hugging Face Hub" in str(e.value)
    assert fake_hub.requests == []  # offline means no request at all


def test_safetensors_repo_online_then_cached(
    table: SpecTable, fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _abliterated(fake_hub, table)
    new, spec = resolve_model(ABLITERATED, table, online=True)
    official = table.get("0.8b")
    assert spec.name == ABLITERATED and spec.hf_repo == ABLITERATED
    assert spec.params.model_dump(exclude={"source"}) == official.params.model_dump(
        exclude={"source"}
    )
    art = spec.artifacts[0]
    ref = official.artifact("bf16", "safetensors")
    assert ref is not None and art.text_bytes == ref.text_bytes and art.repo == ABLITERATED
    assert new.sources[art.source].url and "127.0.0.1" in new.sources[art.source].url
    cached = list((tmp_path / "qwenfit-cache" / "hub").rglob("*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["sha"] == "1" * 40
    est = estimate(spec, runtime="vllm", quant="bf16", context=32768, table=new)
    assert_weights_are_the_files(est, spec)

    # Offline now: the cache answers, no request is made.
    fake_hub.requests.clear()
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    _again, spec2 = resolve_model(ABLITERATED, table)
    assert spec2 == spec and fake_hub.requests == []


def _refuse(*args: object) -> None:
    raise AssertionError("network used while offline")


def test_gguf_repo_quant_selection(
    table: SpecTable, fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _gguf_repo(fake_hub, tmp_path / "files")
    monkeypatch.setattr(hub, "GGUF_PREFIX_BYTES", 512)  # forces the prefix to grow
    new, spec = resolve_model(f"{GGUF_REPO}:Q4_K_M", table, online=True)
    assert spec.name == f"{GGUF_REPO}:Q4_K_M"
    art = spec.artifacts[0]
    assert (art.precision, art.format, art.repo) == ("q4_k_m", "gguf", GGUF_REPO)
    assert art.exact is False  # no mmproj in the repo: vision by formula
    est = estimate(spec, runtime="llama.cpp", quant="q4_k_m", context=32768, table=new)
    assert_weights_are_the_files(est, spec)
    ranged = [r for r in fake_hub.requests if "Q4_K_M" in r]
    assert len(ranged) >= 2  # 512 bytes, then 2 KiB ... until the header fits

    _, ud = resolve_model(f"{GGUF_REPO}/Qwen3.5-Tiny-UD-Q5_K_XL.gguf", table, online=True)
    assert ud.name == f"{GGUF_REPO}:UD-Q5_K_XL" and ud.artifacts[0].precision == "q5_k_m"
    _, default = resolve_model(GGUF_REPO, table, online=True)  # Q4_K_M, as llama.cpp -hf
    assert default.artifacts[0].text_bytes == art.text_bytes
    with pytest.raises(UsageError, match="matches no file"):
        resolve_model(f"{GGUF_REPO}:IQ2_XXS", table, online=True)


def test_hub_errors(table: SpecTable, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="no such repo"):
        resolve_model("tester/missing", table, online=True)
    _abliterated(fake_hub, table, {"model_type": "llama", "hidden_size": 8})
    with pytest.raises(UsageError, match="found model_type 'llama'"):
        resolve_model(ABLITERATED, table, online=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UsageError, match="HF_HUB_OFFLINE"):
        resolve_model("tester/other", table, online=True)


def test_local_hf_cache_is_used_offline(
    table: SpecTable, fake_hub: FakeHub, tmp_path: Path
) -> None:
    a = table.get("2b").model_dump(mode="json")["architecture"]
    repo_dir = tmp_path / "hf" / "hub" / "models--tester--Qwen3.5-2B-coder"
    snap = repo_dir / "snapshots" / ("3" * 40)
    snap.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("3" * 40)
    (snap / "config.json").write_text(json.dumps(q.nested_config(a)))
    q.write_sparse_safetensors(
        snap / "model.safetensors", q.text_tensors(a) + q.vision_tensors(a["vision"])
    )
    _new, spec = resolve_model("tester/Qwen3.5-2B-coder", table)
    assert spec.params.text == table.get("2b").params.text
    assert fake_hub.requests == []


def test_refresh_specs(table: SpecTable, fake_hub: FakeHub) -> None:
    with pytest.raises(UsageError, match="--online"):
        refresh.refresh_specs(table, online=False)
    a = table.get("0.8b").model_dump(mode="json")["architecture"]
    config = q.nested_config(a)
    config["text_config"]["max_position_embeddings"] = 524288
    _abliterated(fake_hub, table, config)
    info = fake_hub.infos.pop(ABLITERATED)
    info["id"] = "Qwen/Qwen3.5-0.8B"
    fake_hub.infos["Qwen/Qwen3.5-0.8B"] = info
    for key in list(fake_hub.files):
        new_key = key.replace(ABLITERATED, "Qwen/Qwen3.5-0.8B")
        fake_hub.files[new_key] = fake_hub.files.pop(key)
        fake_hub.sizes[new_key] = fake_hub.sizes.pop(key)
    diff = refresh.refresh_specs(table, online=True)
    assert "--- a/data/model_specs.json" in diff
    assert '-        "max_position_embeddings": 262144,' in diff
    assert '+        "max_position_embeddings": 524288,' in diff
    assert '+    "native": 524288,' in diff or '"native": 524288' in diff
    assert "# qwen3.5-2b:" in diff  # repos the server does not know are listed, not fatal


def test_refresh_fails_when_no_repo_can_be_read(table: SpecTable, fake_hub: FakeHub) -> None:
    """Issue 17: every repo failing is an error (exit 1), not an empty diff and exit 0."""
    with pytest.raises(QwenfitError, match="could not read any repo") as e:
        refresh.refresh_specs(table, online=True)
    assert not isinstance(e.value, UsageError)


def test_a_token_is_never_printed_or_cached(
    table: SpecTable, fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from qwenfit.cli.commands import main

    secret = "hf_SECRETtokenVALUE1234567890"
    monkeypatch.setenv("HF_TOKEN", secret)
    _abliterated(fake_hub, table)
    runner = CliRunner()
    ok = runner.invoke(
        main,
        [
            "estimate",
            ABLITERATED,
            "--online",
            "--runtime",
            "vllm",
            "--context",
            "4k",
            "--json",
            "--vram",
            "24GB",
            "--ram",
            "64GB",
        ],
    )
    bad = runner.invoke(
        main,
        [
            "estimate",
            "someone/missing-repo",
            "--online",
            "--json",
            "--vram",
            "24GB",
            "--ram",
            "64GB",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert bad.exit_code in (1, 2)
    for out in (ok.output, bad.output):
        assert secret not in out
    for cached in (tmp_path / "qwenfit-cache").rglob("*"):
        if cached.is_file():
            assert secret not in cached.read_text(errors="replace")
