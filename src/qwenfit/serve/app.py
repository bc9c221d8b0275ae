"""The REST API, the page and MCP over HTTP, as one FastAPI (ASGI) application.

    GET  /v1/models /v1/gpus /v1/probe
    POST /v1/estimate /v1/check /v1/recommend /v1/launch /v1/sweep
    GET  /  (the page)  /static/*  /openapi.json  /docs
    POST /mcp  (MCP streamable HTTP, stateless, JSON responses)

Every answer is a JSON document with `schema_version`; an error is
`{"schema_version": 3, "error": {"message": "...", "exit_code": n}}` with the status of
`service.failure`. Bodies are refused before parsing when they exceed `max_body` bytes (413)
or nest deeper than `max_depth` (422), so a hostile body costs a bounded amount of work.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from qwenfit.errors import QwenfitError, validation_message
from qwenfit.inputs import json_depth_ok
from qwenfit.serve.service import Failure, Service, document, one_line, request_model
from qwenfit.serve.service import Request as Question
from qwenfit.settings import COMMANDS

PAGE = Path(__file__).parent / "page"
MAX_BODY = 64 * 1024  # bytes; the largest legitimate body (a probed machine) is a few KiB
MAX_DEPTH = 32  # nesting of objects and arrays; a probed machine nests 4 deep
log = logging.getLogger("qwenfit.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def error_response(f: Failure) -> JSONResponse:
    return JSONResponse(f.document(), status_code=f.status)


class BodyGuard:
    """ASGI middleware: reads at most `max_body` bytes of a request, then hands it on.

    413 for a longer body (declared or streamed); for /v1/ bodies, 422 when the JSON does not
    parse or nests deeper than `max_depth`. Runs before FastAPI parses anything.
    """

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY, max_depth: int = MAX_DEPTH):
        self.app, self.max_body, self.max_depth = app, max_body, max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_big = Failure(413, 2, f"request body over the {self.max_body}-byte limit")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await error_response(too_big)(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await error_response(too_big)(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if scope["path"].startswith("/v1/"):
            problem = self.problem(body)
            if problem:
                await error_response(Failure(422, 2, problem))(scope, receive, send)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def problem(self, body: bytes) -> str | None:
        """Why `body` is refused, or None. Linear in the body: the C JSON parser (which gives
        up on deep nesting with RecursionError) and one walk of what it built; no regex."""
        if not body.strip():
            return None  # FastAPI reports the missing body
        deep = f"body: JSON nested deeper than {self.max_depth} levels"
        try:
            doc = json.loads(body)
        except RecursionError:
            return deep
        except ValueError as e:  # JSONDecodeError, or an integer over Python's digit limit
            return one_line(f"body: not valid JSON ({e})")[:300]
        return None if json_depth_ok(doc, self.max_depth) else deep


def route(service: Service, command: str) -> Callable[..., dict[str, Any]]:
    """The POST handler of `command`: FastAPI reads the body into its request model (so the
    OpenAPI document shows it), and the service answers as on every other face."""
    model = request_model(command)

    def handler(req: Question) -> dict[str, Any]:
        return document(command, service.handle(command, req))

    handler.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("req", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=model)],
        return_annotation=dict[str, Any],
    )
    handler.__name__ = command
    return handler


def create_app(
    *,
    allow_dir: str | Path | None = None,
    host: str = "127.0.0.1",
    allow_hosts: Iterable[str] = (),
    mcp: bool = True,
    max_body: int = MAX_BODY,
) -> FastAPI:
    """The application. `host` is where it will listen; requests must name it, a loopback
    name or one of `allow_hosts` in their Host header (`transport.HostGuard`)."""
    from qwenfit.serve.service import package_version
    from qwenfit.serve.transport import HostGuard, allowed_hosts

    __version__ = package_version()
    service = Service(allow_dir=allow_dir)
    session_manager = None
    mcp_routes: list[Any] = []
    if mcp:
        from qwenfit.serve.mcp_server import create_mcp

        server = create_mcp(service)
        mcp_app = server.streamable_http_app(
            streamable_http_path="/mcp",
            stateless_http=True,
            json_response=True,
            max_request_body_size=max_body,
            host=host,
        )
        mcp_routes = list(mcp_app.routes)
        session_manager = server.session_manager

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if session_manager is None:
            yield
            return
        async with session_manager.run():
            yield

    app = FastAPI(
        title="qwenfit",
        version=__version__,
        description="Which Qwen3.5 model a machine should run, how much memory it takes, and "
        "the command that starts it. The same JSON documents as `qwenfit ... --json`.",
        lifespan=lifespan,
    )
    app.router.routes.extend(mcp_routes)
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def bad_body(_: Request, e: RequestValidationError) -> JSONResponse:
        errors = list(e.errors())
        if not errors:
            return error_response(Failure(422, 2, "invalid body"))
        as_pydantic = ValidationError.from_exception_data("body", errors)
        return error_response(Failure(422, 2, validation_message(as_pydantic)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return error_response(Failure(e.status_code, 2, one_line(str(e.detail))))

    @app.exception_handler(QwenfitError)
    async def qwenfit_error(_: Request, e: QwenfitError) -> JSONResponse:
        return error_response(service.failure(e))

    @app.exception_handler(ValidationError)
    async def record_error(_: Request, e: ValidationError) -> JSONResponse:
        return error_response(service.failure(e))

    @app.exception_handler(Exception)
    async def crash(_: Request, e: Exception) -> JSONResponse:
        return error_response(service.failure(e))  # logs the traceback under an id

    @app.get("/v1/models", summary="The models of the spec table (qwenfit models --json)")
    def models(family: str = "qwen3.5") -> dict[str, Any]:
        return service.answer("models", {"family": family})

    @app.get("/v1/gpus", summary="The GPU catalog behind the gpu field")
    def gpus() -> dict[str, Any]:
        return service.gpus()

    @app.get("/v1/probe", summary="The server's own machine (qwenfit probe --json)")
    def probe() -> dict[str, Any]:
        return service.answer("probe", {})

    for command in COMMANDS:
        app.add_api_route(
            f"/v1/{command}",
            route(service, command),
            methods=["POST"],
            summary=request_model(command).__doc__,
        )

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(PAGE / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=PAGE), name="static")
    app.add_middleware(BodyGuard, max_body=max_body)
    app.add_middleware(HostGuard, hosts=allowed_hosts(host, allow_hosts))  # outermost
    return app
