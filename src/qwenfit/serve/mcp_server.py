"""qwenfit as an MCP server (the official MCP Python SDK's `MCPServer`, FastMCP before 2.0).

Tools: recommend, estimate, check, launch, sweep, models, probe. Each tool's input schema is the
request model the REST API and the CLI use (the one settings schema: same fields, descriptions,
limits), each result is the JSON document of `qwenfit ... --json`, and an error, an unknown or a
missing argument included, is a tool error of one line.

    qwenfit mcp                       # stdio, for an agent that starts it
    qwenfit serve  ->  POST /mcp      # streamable HTTP, next to the REST API
"""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from pydantic import ConfigDict

from qwenfit.serve.service import Service, request_model

TOOLS: dict[str, str] = {
    "recommend": "The best Qwen3.5 model, precision and context for a machine (default: this "
    "one), with alternatives and the command that starts each. Same as `qwenfit recommend "
    "--json`.",
    "estimate": "Memory a Qwen3.5 model takes part by part in a runtime (weights, KV cache, "
    "linear state, compute), laid out on the machine. Same as `qwenfit estimate MODEL --json`.",
    "check": "Whether a model fits the machine as configured, how much is missing, and the "
    "nearest configuration that fits. Same as `qwenfit check MODEL --json`.",
    "launch": "The command lines (argv and shell form) that start a model; runs nothing. "
    "Without a model: the top recommendation. Same as `qwenfit launch --json`.",
    "sweep": "Memory, speed and fit of one configuration at each context and KV cache type. "
    "Same as `qwenfit estimate MODEL --sweep --json`.",
    "fleet": "Which node pool of a Kubernetes cluster runs which Qwen model, and the manifests "
    "that run it there, from the cluster's node list (`kubectl get nodes -o json`). Same as "
    "`qwenfit fleet --output json`.",
    "models": "The Qwen3.5 models qwenfit knows, with sizes and precisions.",
    "probe": "The GPUs, RAM and runtimes of the machine the server runs on (or the "
    "hypothetical machine the overrides describe). Same as `qwenfit probe --json`.",
}


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every `$ref` to its `$defs` replaced by the definition (none recursive)."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


class Arguments(ArgModelBase):
    """Hands every argument the client sent to the tool as one dict, so the request model (not
    the SDK) validates them: an unknown or missing argument is refused in one line, as on the
    REST API and the CLI."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.__pydantic_extra__ or {})}


def tool(command: str, service: Service) -> Tool:
    """The MCP tool of `command`: its input schema is the request model's (the one settings
    schema), its result the command's JSON document."""

    def call(arguments: dict[str, Any]) -> str:
        try:
            return json.dumps(service.answer(command, arguments), indent=2)
        except Exception as e:
            raise ToolError(service.failure(e).message) from e  # logged, no server paths

    call.__name__ = command
    made = Tool.from_function(
        call, name=command, description=TOOLS[command], structured_output=False
    )
    made.fn_metadata.arg_model = Arguments
    schema = inline_refs(request_model(command).model_json_schema())
    schema["additionalProperties"] = False
    made.parameters = schema
    return made


def create_mcp(service: Service | None = None) -> MCPServer:
    """The MCP server with one tool per command, answering from `service` (default: no
    allow-list)."""
    from qwenfit.serve.service import package_version

    __version__ = package_version()
    service = service or Service()
    server: MCPServer = MCPServer(
        name="qwenfit",
        version=__version__,
        instructions="Ask which Qwen3.5 model a machine should run (recommend), how much memory "
        "a configuration takes (estimate), whether it fits (check) and how to start it (launch). "
        "Without hardware fields the tools plan for the machine the server runs on.",
        log_level="WARNING",
        tools=[tool(command, service) for command in TOOLS],
    )
    return server


def run_stdio(allow_dir: str | None = None) -> None:
    """Serve the tools over stdin/stdout until the client closes them."""
    create_mcp(Service(allow_dir=allow_dir)).run("stdio")
