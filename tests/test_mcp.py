"""The MCP server through the SDK's own client: over stdio (`python -m qwenfit mcp`, as an
agent starts it) and over streamable HTTP under `qwenfit serve`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")
pytest.importorskip("uvicorn")

from click.testing import CliRunner
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from serve_support import allow_loopback, running_server

from qwenfit.cli import main

TOOLS = {"recommend", "estimate", "check", "launch", "sweep", "models", "probe"}
ESTIMATE = {"model": "9b", "quant": "q4_k_m", "context": "32k", "gpu": "RTX 4090", "ram": "64GB"}


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    allow_loopback(monkeypatch)


def stdio() -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "qwenfit", "mcp"])


def text(result: Any) -> str:
    assert len(result.content) == 1
    out: str = result.content[0].text
    return out


async def session(server: Any) -> dict[str, Any]:
    """List the tools, call estimate, and call it wrongly twice; return what came back."""
    async with Client(server, read_timeout_seconds=60) as client:
        tools = (await client.list_tools()).tools
        ok = await client.call_tool("estimate", ESTIMATE)
        unknown = await client.call_tool("estimate", {"model": "9bb"})
        wrong = await client.call_tool("estimate", {"model": "9b", "parallel": "many"})
        path = await client.call_tool("check", {"model": "/etc/passwd"})
        models = await client.call_tool("models", {})
    return {"tools": tools, "ok": ok, "unknown": unknown, "wrong": wrong, "path": path,
            "models": models}


def cli_estimate() -> dict[str, Any]:
    argv = ["estimate", "9b", "--quant", "q4_k_m", "--context", "32k", "--gpu", "RTX 4090",
            "--ram", "64GB", "--json"]
    doc: dict[str, Any] = json.loads(CliRunner().invoke(main, argv).stdout)
    return doc


def check_session(got: dict[str, Any]) -> None:
    tools = {t.name: t for t in got["tools"]}
    assert set(tools) == TOOLS
    props = tools["estimate"].input_schema["properties"]
    assert {"model", "runtime", "quant", "context", "kv_cache", "gpu", "vram", "ram"} <= set(props)
    assert tools["estimate"].input_schema["required"] == ["model"]
    assert props["parallel"]["maximum"] == 4096  # the request model's limits
    assert "task" in tools["recommend"].input_schema["properties"]
    assert not got["ok"].is_error
    assert json.loads(text(got["ok"])) == cli_estimate()
    for key, words in (("unknown", "unknown model '9bb'"), ("wrong", "parallel"),
                       ("path", "--allow-dir")):
        assert got[key].is_error, key
        message = text(got[key])
        assert words in message and "\n" not in message and "Traceback" not in message
    assert len(json.loads(text(got["models"]))["models"]) == 8


def test_stdio_server() -> None:
    check_session(anyio.run(session, stdio()))


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_server() as base:
        yield base


def test_http_server_under_serve(url: str) -> None:
    check_session(anyio.run(session, url + "/mcp"))


def test_mcp_command_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp.server.mcpserver", None)  # import fails
    monkeypatch.delitem(sys.modules, "qwenfit.serve.mcp_server", raising=False)
    result = CliRunner().invoke(main, ["mcp"])
    assert result.exit_code == 1
    expected = "Error: this command needs the serve extra: pip install 'qwenfit[serve]'"
    assert result.stderr.strip() == expected
