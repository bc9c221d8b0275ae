"""qwenfit as an MCP server (the official MCP Python SDK's `MCPServer`, FastMCP before 2.0).

Tools: recommend, estimate, check, launch, models, probe. Each tool's input schema is built from
the request model the REST API uses (same fields, same descriptions, same limits), each result
is the JSON document of `qwenfit ... --json`, and a qwenfit error is a tool error whose text
ends with the library's one-line message.

    qwenfit mcp                       # stdio, for an agent that starts it
    qwenfit serve  ->  POST /mcp      # streamable HTTP, next to the REST API
"""

from __future__ import annotations

import inspect
import json
import warnings
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from pydantic import BaseModel, WithJsonSchema
from pydantic.json_schema import PydanticJsonSchemaWarning

from qwenfit.serve.service import (
    CheckRequest,
    EstimateRequest,
    LaunchRequest,
    ModelsRequest,
    ProbeRequest,
    RecommendRequest,
    Service,
    failure,
)

TOOLS: dict[str, tuple[type[BaseModel], str]] = {
    "recommend": (
        RecommendRequest,
        "The best Qwen3.5 model, precision and context for a machine (default: this one), "
        "with alternatives and the command that starts each. Same as `qwenfit recommend --json`.",
    ),
    "estimate": (
        EstimateRequest,
        "Memory a Qwen3.5 model takes part by part in a runtime (weights, KV cache, linear "
        "state, compute), laid out on the machine. Same as `qwenfit estimate MODEL --json`.",
    ),
    "check": (
        CheckRequest,
        "Whether a model fits the machine as configured, how much is missing, and the nearest "
        "configuration that fits. Same as `qwenfit check MODEL --json`.",
    ),
    "launch": (
        LaunchRequest,
        "The command lines (argv and shell form) that start a model; runs nothing. Without a "
        "model: the top recommendation. Same as `qwenfit launch --json`.",
    ),
    "models": (ModelsRequest, "The Qwen3.5 models qwenfit knows, with sizes and precisions."),
    "probe": (
        ProbeRequest,
        "The GPUs, RAM and runtimes of the machine the server runs on (or the hypothetical "
        "machine the overrides describe). Same as `qwenfit probe --json`.",
    ),
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


def tool_function(
    name: str,
    model: type[BaseModel],
    handler: Callable[[Any], dict[str, Any]],
    service: Service | None = None,
) -> Callable[..., str]:
    """A function whose keyword parameters are `model`'s fields, so the SDK derives the tool's
    input schema from the request model; the body re-validates the arguments with `model`."""

    def call(**arguments: Any) -> str:
        try:
            given = {k: v for k, v in arguments.items() if v is not MISSING}
            request = model.model_validate(given)
            return json.dumps(handler(request), indent=2)
        except Exception as e:
            answer = service.failure(e) if service is not None else failure(e)
            raise ToolError(answer.message) from e

    # Typed for the schema, lenient for the SDK's own validation: `model` validates, so a bad
    # or missing argument is one line naming the field, as on the REST API. A required field
    # defaults to MISSING for the SDK (whose own complaint is a multi-line dump) and is put
    # back into the advertised schema's `required` by `tool`.
    schema = inline_refs(model.model_json_schema())
    params = []
    for field_name, field in model.model_fields.items():
        default = MISSING if field.is_required() else field.get_default(call_default_factory=True)
        params.append(
            inspect.Parameter(
                field_name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[Any, WithJsonSchema(schema["properties"][field_name])],
                default=default,
            )
        )
    call.__signature__ = inspect.Signature(params, return_annotation=str)  # type: ignore[attr-defined]
    call.__name__ = name
    call.__doc__ = model.__doc__
    return call


class _Missing:
    """The SDK's default for a required argument the client left out; `model` reports it."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def tool(
    name: str,
    model: type[BaseModel],
    description: str,
    handler: Callable[[Any], dict[str, Any]],
    service: Service | None = None,
) -> Tool:
    """The MCP tool `name`: `tool_function`'s schema with the request model's required fields."""
    with warnings.catch_warnings():  # MISSING has no JSON form; the schema drops it
        warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
        made = Tool.from_function(
            tool_function(name, model, handler, service),
            name=name,
            description=description,
            structured_output=False,
        )
    required = [n for n, f in model.model_fields.items() if f.is_required()]
    properties = made.parameters.get("properties", {})
    for n in required:
        properties.get(n, {}).pop("default", None)
    if required:
        made.parameters["required"] = required
    else:
        made.parameters.pop("required", None)
    return made


def create_mcp(service: Service | None = None) -> MCPServer:
    """The MCP server with the six tools, answering from `service` (default: no allow-list)."""
    from qwenfit.serve.service import package_version

    __version__ = package_version()
    service = service or Service()
    handlers: dict[str, Callable[[Any], dict[str, Any]]] = {
        "recommend": service.recommend,
        "estimate": service.estimate,
        "check": service.check,
        "launch": service.launch,
        "models": service.models,
        "probe": service.probe,
    }
    tools = [
        tool(name, model, description, handlers[name], service)
        for name, (model, description) in TOOLS.items()
    ]
    server: MCPServer = MCPServer(
        name="qwenfit",
        tools=tools,
        version=__version__,
        instructions="Ask which Qwen3.5 model a machine should run (recommend), how much memory "
        "a configuration takes (estimate), whether it fits (check) and how to start it (launch). "
        "Without hardware fields the tools plan for the machine the server runs on.",
        log_level="WARNING",
    )
    return server


def run_stdio(allow_dir: str | None = None) -> None:
    """Serve the tools over stdin/stdout until the client closes them."""
    create_mcp(Service(allow_dir=allow_dir)).run("stdio")
