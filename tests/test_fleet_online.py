"""`qwenfit fleet --online` against a local API server: a loopback HTTP server answers
GET /api/v1/nodes and /api/v1/pods with the recorded lists, and the real lightkube client reads
them through a kubeconfig written for the test (tests never leave loopback)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from serve_support import LoopbackHTTP, allow_loopback

from qwenfit.cli.commands import main
from qwenfit.errors import QwenfitError, UsageError
from qwenfit.fleet import fleet
from qwenfit.fleet.online import read_cluster

FIXTURES = Path(__file__).parent / "fixtures" / "fleet"
TOKEN = "test-token"


def node_list(shape: str) -> dict[str, Any]:
    doc = json.loads((FIXTURES / f"{shape}.json").read_text())
    return {"apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "7"},
            "items": doc["items"]}  # fmt: skip


def pod(name: str, node: str, gpus: int, phase: str = "Running") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
        },
        "status": {"phase": phase},
    }


def status(code: int, message: str) -> dict[str, Any]:
    """The Status object the API server answers a refused request with."""
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
            "code": code}  # fmt: skip


class ApiServer(LoopbackHTTP):
    """The two LIST endpoints, paged as the API server pages them (limit / continue)."""

    def __init__(self, nodes: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        self.nodes, self.pods, self.requests = nodes, pods, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                outer.requests.append((url.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self.reply(401, status(401, "Unauthorized"))
                items = {"/api/v1/nodes": outer.nodes["items"], "/api/v1/pods": outer.pods}
                if url.path not in items:
                    return self.reply(404, status(404, "not found"))
                query = parse_qs(url.query)
                start = int(query.get("continue", ["0"])[0])
                limit = int(query.get("limit", ["1000"])[0])
                page = items[url.path][start : start + limit]
                more = start + limit < len(items[url.path])
                kind = "NodeList" if url.path.endswith("nodes") else "PodList"
                meta = {
                    "resourceVersion": "7",
                    **({"continue": str(start + limit)} if more else {}),
                }
                self.reply(200, {"apiVersion": "v1", "kind": kind, "metadata": meta, "items": page})

            def reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)


def kubeconfig(tmp_path: Path, server: str, token: str = TOKEN) -> Path:
    path = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server}}],
        "users": [{"name": "me", "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "me"}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiServer]:
    allow_loopback(monkeypatch)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    nodes = node_list("h200-2node")
    first = nodes["items"][0]["metadata"]["name"]
    pods = [pod("train-1", first, 6), pod("done", first, 2, phase="Succeeded")]
    pods += [pod(f"web-{i}", "elsewhere", 0) for i in range(1200)]  # pages of 500
    server = ApiServer(nodes, pods)
    yield server
    server.close()


def test_reads_nodes_and_pods_through_lightkube(api: ApiServer, tmp_path: Path) -> None:
    nodes, pods = read_cluster(str(kubeconfig(tmp_path, api.url)))
    assert [n["metadata"]["name"] for n in nodes["items"]] == [
        n["metadata"]["name"] for n in api.nodes["items"]
    ]
    assert len(pods["items"]) == 1202  # three pages followed by their continue tokens
    assert sum(1 for path, _ in api.requests if path == "/api/v1/pods") == 3
    offline = fleet(node_list("h200-2node"))
    online = fleet(nodes, pods=pods, source="api")
    assert online.source == "api" and online.notes
    # the pods' six GPUs are taken off the first node: two left there, eight on the other
    (answer,) = online.pools
    assert [r.devices for r in answer.pool.free] == [8, 2]
    assert [r.devices for r in offline.pools[0].pool.free] == [8, 8]
    assert answer.pool.machine_for(2).gpus == answer.pool.machine.gpus[:2]
    assert online.best is not None and online.best.nodes == 1


def test_cli_online(api: ApiServer, tmp_path: Path, runner: Any) -> None:
    config = kubeconfig(tmp_path, api.url)
    res = runner.invoke(
        main, ["fleet", "--online", "--kubeconfig", str(config), "--output", "json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)["fleet"]
    assert doc["source"] == "api"
    assert [r["devices"] for r in doc["pools"][0]["pool"]["free"]] == [8, 2]
    res = runner.invoke(
        main, ["fleet", "--online", "--output", "yaml"], env={"KUBECONFIG": str(config)}
    )
    assert res.exit_code == 0 and "kind: Deployment" in res.output


def test_refused_and_unreachable(api: ApiServer, tmp_path: Path) -> None:
    with pytest.raises(QwenfitError, match="refused the request: Unauthorized"):
        read_cluster(str(kubeconfig(tmp_path, api.url, token="wrong")))
    api.close()
    with pytest.raises(QwenfitError, match=r"cannot reach the API server at http://127\.0\.0\.1"):
        read_cluster(str(kubeconfig(tmp_path, api.url)))


def test_bad_kubeconfig(tmp_path: Path, runner: Any) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(UsageError, match="kubeconfig"):
        read_cluster(str(missing))
    config = kubeconfig(tmp_path, "http://127.0.0.1:9")
    with pytest.raises(UsageError, match="kubeconfig"):
        read_cluster(str(config), context="no-such-context")
    res = runner.invoke(main, ["fleet", "--online", "--kubeconfig", str(missing)])
    assert res.exit_code == 2 and res.output.startswith("Error: kubeconfig")
