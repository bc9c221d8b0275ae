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

import fuzz_service as fs
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from serve_support import allow_loopback, running_server

from qwenfit.cli import main

TOOLS = {"recommend", "estimate", "check", "launch", "sweep", "fleet", "models", "probe"}
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
    return {
        "tools": tools,
        "ok": ok,
        "unknown": unknown,
        "wrong": wrong,
        "path": path,
        "models": models,
    }


def cli_estimate() -> dict[str, Any]:
    argv = [
        "estimate",
        "9b",
        "--quant",
        "q4_k_m",
        "--context",
        "32k",
        "--gpu",
        "RTX 4090",
        "--ram",
        "64GB",
        "--json",
    ]
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
    for key, words in (
        ("unknown", "unknown model '9bb'"),
        ("wrong", "parallel"),
        ("path", "--allow-dir"),
    ):
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


CALL_SECONDS = 10.0  # budget per tool call on 2 shared cores


def test_missing_argument_is_one_line() -> None:
    from qwenfit.serve.mcp_server import create_mcp

    async def call() -> Any:
        async with Client(create_mcp()) as client:
            return await client.call_tool("check", {"vram": "8GB", "ram": "16GB"})

    got = anyio.run(call)
    assert got.is_error and text(got).endswith("model: required")
    assert "\n" not in text(got)


@settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(fs.st.lists(fs.mcp_call(), min_size=6, max_size=6))
def test_fuzzed_tool_arguments_are_answered_within_budget(
    calls: list[tuple[str, dict[str, Any]]],
) -> None:
    import time

    from qwenfit.serve.mcp_server import create_mcp

    async def session() -> list[tuple[Any, float]]:
        out = []
        async with Client(create_mcp(), read_timeout_seconds=60) as client:
            for tool, arguments in calls:
                start = time.monotonic()
                result = await client.call_tool(tool, arguments)
                out.append((result, time.monotonic() - start))
        return out

    for (tool, arguments), (result, seconds) in zip(calls, anyio.run(session), strict=True):
        assert seconds < CALL_SECONDS, (tool, arguments, seconds)
        if result.is_error:
            message = text(result)
            assert "\n" not in message and "Traceback" not in message, message
            assert "internal error" not in message, (tool, arguments, message)
        else:
            json.loads(text(result))
