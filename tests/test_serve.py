"""The REST API as a client meets it: real HTTP (httpx) against uvicorn on a loopback port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from click.testing import CliRunner  # noqa: E402
from serve_support import allow_loopback, running_server  # noqa: E402

from qwenfit.cli import main  # noqa: E402

HW = {"gpu": "RTX 4090", "ram": "64GB"}


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    allow_loopback(monkeypatch)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_server() as base:
        yield base


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("allowed")


def post(url: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=30)


def cli_json(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code in (0, 3), result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def assert_error(r: httpx.Response, status: int, exit_code: int, *words: str) -> str:
    assert r.status_code == status, r.text
    doc = r.json()
    assert set(doc) == {"schema_version", "error"}
    assert doc["schema_version"] == 3
    assert doc["error"]["exit_code"] == exit_code
    message: str = doc["error"]["message"]
    assert "\n" not in message and len(message) < 600
    for w in words:
        assert w in message, message
    return message


# --- the same documents as the CLI --------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "argv"),
    [
        (
            {"model": "9b", "quant": "q4_k_m", "context": "128k", "runtime": "llama.cpp", **HW},
            [
                "estimate",
                "9b",
                "--quant",
                "q4_k_m",
                "--context",
                "128k",
                "--runtime",
                "llama.cpp",
                "--gpu",
                "RTX 4090",
                "--ram",
                "64GB",
            ],
        ),
        (
            {
                "model": "35b-a3b",
                "gpu": "RTX 4060 Ti 16GB",
                "ram": "64GB",
                "kv_cache": "q8_0",
                "parallel": 2,
                "context": 65536,
                "runtime": "llama.cpp",
            },
            [
                "estimate",
                "35b-a3b",
                "--gpu",
                "RTX 4060 Ti 16GB",
                "--ram",
                "64GB",
                "--kv-cache",
                "q8_0",
                "--parallel",
                "2",
                "--context",
                "65536",
                "--runtime",
                "llama.cpp",
            ],
        ),
    ],
)
def test_estimate_is_the_cli_document(url: str, body: dict[str, Any], argv: list[str]) -> None:
    r = post(url, "/v1/estimate", body)
    assert r.status_code == 200, r.text
    assert r.json() == cli_json(*argv)


def test_check_recommend_launch_models_are_the_cli_documents(url: str) -> None:
    hw = ["--gpu", "RTX 4090", "--ram", "64GB"]
    body = {"model": "27b", "quant": "q4_k_m", "context": "32k", "margin": "10%", **HW}
    argv = ["check", "27b", "--quant", "q4_k_m", "--context", "32k", "--margin", "10%", *hw]
    assert post(url, "/v1/check", body).json() == cli_json(*argv)
    body = {"task": "code", "limit": 3, "runtime": "llama.cpp", **HW}
    argv = ["recommend", "--task", "code", "-n", "3", "--runtime", "llama.cpp", *hw]
    assert post(url, "/v1/recommend", body).json() == cli_json(*argv)
    body = {"model": "9b", "runtime": "vllm", **HW}
    expected = cli_json("launch", "9b", "--runtime", "vllm", *hw)
    assert post(url, "/v1/launch", body).json() == expected
    assert post(url, "/v1/launch", HW).json() == cli_json("launch", *hw)
    assert httpx.get(url + "/v1/models").json() == cli_json("models")


def test_no_hardware_fields_plan_for_the_servers_machine(url: str) -> None:
    probed = httpx.get(url + "/v1/probe").json()
    assert probed["schema_version"] == 3 and probed["machine"]["source"] == "probe"
    doc = post(url, "/v1/recommend", {}).json()["recommend"]
    assert doc["machine"]["source"] == "probe"
    assert doc["machine"]["ram_total_bytes"] == probed["machine"]["ram_total_bytes"]


def test_gpus_is_the_catalog(url: str) -> None:
    from qwenfit.hardware.catalog import gpu_catalog

    doc = httpx.get(url + "/v1/gpus").json()
    assert doc["schema_version"] == 3
    assert [g["name"] for g in doc["gpus"]] == [g.name for g in gpu_catalog().gpus]


def test_does_not_fit_is_200(url: str) -> None:
    body = {"model": "27b", "quant": "q4_k_m", "runtime": "llama.cpp", "vram": "8GB", "ram": "16GB"}
    r = post(url, "/v1/check", body)
    assert r.status_code == 200 and r.json()["check"]["fits"] is False
    r = post(url, "/v1/recommend", {"vram": "1GB", "ram": "1GB"})
    assert r.status_code == 200 and r.json()["recommend"]["recommendations"] == []
    assert_error(post(url, "/v1/launch", {"vram": "1GB", "ram": "1GB"}), 409, 3, "nothing fits")


def test_sweep_rows(url: str) -> None:
    body = {"model": "9b", "runtime": "llama.cpp", "quant": "q4_k_m", **HW}
    sweep = post(url, "/v1/sweep", body).json()["sweep"]
    assert sweep["contexts"][0] == 4096 and sweep["contexts"][-1] == 262144
    kinds = {r["kv_cache"] for r in sweep["rows"]}
    assert {"f16", "q8_0", "q4_0"} <= kinds
    assert "fp8" not in kinds  # llama.cpp has no fp8 KV cache
    f16 = [r for r in sweep["rows"] if r["kv_cache"] == "f16"]
    assert [r["context"] for r in f16] == sweep["contexts"]
    totals = [r["total_bytes"] for r in f16]
    assert totals == sorted(totals) and totals[0] < totals[-1]
    # Each row is what estimate says for that context.
    row = f16[3]
    est = post(url, "/v1/estimate", {**body, "context": row["context"], "kv_cache": "f16"}).json()
    assert row["total_bytes"] == est["estimate"]["total_bytes"]
    assert row["gpu_bytes"] + row["ram_bytes"] == row["total_bytes"]


def test_openapi_describes_every_endpoint(url: str) -> None:
    spec = httpx.get(url + "/openapi.json").json()
    for path in ("/v1/models", "/v1/gpus", "/v1/probe"):
        assert "get" in spec["paths"][path]
    for path in ("/v1/estimate", "/v1/check", "/v1/recommend", "/v1/launch", "/v1/sweep"):
        assert "requestBody" in spec["paths"][path]["post"]
    assert "kv_cache" in spec["components"]["schemas"]["EstimateRequest"]["properties"]


# --- hostile and wrong input --------------------------------------------------------------


def test_usage_errors_are_400_with_the_librarys_message(url: str) -> None:
    assert_error(post(url, "/v1/estimate", {"model": "9bb"}), 400, 2, "unknown model '9bb'")
    assert_error(post(url, "/v1/estimate", {"model": "9b", "context": "32q"}), 400, 2, "'32q'")
    assert_error(post(url, "/v1/estimate", {"model": "9b", "gpu": "RTX 9999"}), 400, 2, "GPU")
    assert_error(post(url, "/v1/estimate", {"model": "9b", "vram": "lots"}), 400, 2, "lots")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "9b", "parallel": "many"}, "parallel"),
        ({"model": 9}, "model"),
        ({"model": "9b", "text_only": {"a": 1}}, "text_only"),
        ({"model": "9b", "context": int("9" * 400)}, "context"),
        ({"model": "9b", "parallel": int("9" * 400)}, "parallel"),
        ({"model": "9b", "ram": 10**400}, "ram"),
        ({"model": "9b", "nodes": -1}, "nodes"),
        ({"model": "9b", "colour": "red"}, "colour"),
        ({"model": "x" * 10_000}, "model"),
        ({"model": "9b", "min_speed": 1}, "min_speed"),
        ({}, "model"),
    ],
)
def test_wrong_types_and_huge_numbers_are_422(url: str, body: Any, field: str) -> None:
    message = assert_error(post(url, "/v1/estimate", body), 422, 2)
    assert message.startswith(f"invalid {field}"), message


def test_recommend_min_speed_must_be_finite(url: str) -> None:
    r = httpx.post(
        url + "/v1/recommend",
        content=b'{"min_speed": 1e999}',
        headers={"content-type": "application/json"},
    )
    assert_error(r, 422, 2, "min_speed")


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_00 + b"]" * 100_00,
        b'{"model": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}",
        b"not json",
        b'{"model": "9b", "context": ' + b"9" * 5000 + b"}",
        b'{"model": "9b"',
        b"\xff\xfe",
    ],
)
def test_malformed_and_deep_json_are_422(url: str, raw: bytes) -> None:
    r = httpx.post(url + "/v1/estimate", content=raw, headers={"content-type": "application/json"})
    assert_error(r, 422, 2, "body")


def test_ten_megabyte_body_is_413(url: str) -> None:
    big = json.dumps({"model": "9b", "pad": "x" * (10 << 20)}).encode()
    r = httpx.post(url + "/v1/estimate", content=big, headers={"content-type": "application/json"})
    assert_error(r, 413, 2, "limit")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds on the stream too
        for _ in range(160):
            yield b"x" * 65536

    r = httpx.post(
        url + "/v1/estimate", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_server_still_answers_after_hostile_bodies(url: str) -> None:
    for raw in (b"[" * 50_000, b"\x00" * 1000, b'{"model": "9b", "quant": null}' * 100):
        httpx.post(url + "/v1/check", content=raw, headers={"content-type": "application/json"})
    assert post(url, "/v1/estimate", {"model": "2b", **HW}).status_code == 200


@pytest.mark.parametrize(
    "ref", ["/etc/passwd", "../../etc", "~/models", "./x.gguf", "C:\\models\\a.gguf", "a.gguf"]
)
def test_paths_are_refused_without_allow_dir(url: str, ref: str) -> None:
    assert_error(post(url, "/v1/estimate", {"model": ref}), 400, 2, "--allow-dir")
    assert_error(post(url, "/v1/recommend", {"models": [ref]}), 400, 2, "--allow-dir")


def test_mmproj_is_refused_without_allow_dir(url: str) -> None:
    body = {"model": "9b", "mmproj": "/tmp/mmproj.gguf"}
    assert_error(post(url, "/v1/estimate", body), 400, 2, "--allow-dir")


def test_allow_dir_reads_only_below_it(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "notes.txt").write_text("not a checkpoint")
    outside = tmp_path / "outside.gguf"
    outside.write_bytes(b"GGUF")
    (allowed / "link.gguf").symlink_to(outside)
    with running_server(allow_dir=allowed) as base:
        for ref in ("../outside.gguf", str(outside), "link.gguf"):
            assert_error(post(base, "/v1/estimate", {"model": ref}), 400, 2, "outside")
        assert_error(post(base, "/v1/estimate", {"model": "missing.gguf"}), 400, 2, "no such")
        # Inside the folder it is read, and its own error comes back as a usage error.
        assert_error(post(base, "/v1/estimate", {"model": "notes.txt"}), 400, 2, "notes.txt")
        assert post(base, "/v1/estimate", {"model": "9b", **HW}).status_code == 200


def test_unknown_routes_and_methods_answer_json(url: str) -> None:
    assert_error(httpx.get(url + "/v1/nope"), 404, 2)
    assert_error(httpx.get(url + "/v1/estimate"), 405, 2)


def test_page_and_static_files(url: str) -> None:
    r = httpx.get(url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for ref in ("/static/app.js", "/static/style.css"):
        assert ref in r.text
        assert httpx.get(url + ref).status_code == 200
    assert "http://" not in r.text.replace("http://www.w3.org", "")  # no CDN
    assert httpx.get(url + "/static/../service.py").status_code == 404
