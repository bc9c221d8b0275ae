"""What stands between the network and the application: which `Host` names are answered, how
long a client may take to send its request, and how many connections are served at once.

* `HostGuard` (ASGI middleware, every route including /mcp): a request whose `Host` header is
  not on the allow-list gets 421 before anything runs. A web page cannot read the API through
  DNS rebinding, because its requests carry the attacker's host name. Loopback names are always
  allowed; the address the server binds and each `--allow-host` are added.
* `DeadlineH11Protocol` (uvicorn's h11 protocol): a connection that has not delivered a whole
  request (headers and body) `READ_TIMEOUT` seconds after it opened, or after its previous
  answer, is closed; uvicorn itself never closes a connection that stops halfway through its
  headers.
* `server_config`: uvicorn's settings with the connection cap (`MAX_CONNECTIONS`; more get 503),
  the keep-alive timeout, the deadline protocol and the header size limit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
READ_TIMEOUT = 10.0  # seconds to deliver a whole request; a 64 KiB body takes milliseconds
KEEP_ALIVE = 5  # seconds an idle connection is kept between requests
MAX_CONNECTIONS = 64  # connections and requests at once; more are answered 503
MAX_HEADER_BYTES = 16 * 1024  # h11's limit on a request's head (uvicorn's default, stated)


def host_name(header: str) -> str:
    """'example.com' from 'Example.COM:8000', '::1' from '[::1]:8000'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return header.rstrip(".")


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """Loopback names, the bound address unless it is a wildcard, and `extra`."""
    names = {*LOOPBACK_NAMES, *(host_name(h) for h in extra)}
    try:
        wildcard = ipaddress.ip_address(bind).is_unspecified
    except ValueError:
        wildcard = False
    if bind and not wildcard:
        names.add(host_name(bind))
    return frozenset(names)


class HostGuard:
    """ASGI middleware: 421 for a request whose Host header is missing or not allowed."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers") or []).get(b"host", b"")
        name = host_name(raw.decode("latin-1"))
        if name in self.hosts:
            await self.app(scope, receive, send)
            return
        from qwenfit.serve.service import Failure

        shown = repr(name[:80]) if name else "(none)"
        message = (
            f"Host {shown} is not served here; start the server with '--allow-host NAME' to "
            "answer it"
        )
        body = json.dumps(Failure(421, 2, message).document()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 421,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection that does not deliver a whole request in
    `READ_TIMEOUT` seconds (slow headers, or a body that trickles)."""

    read_timeout = READ_TIMEOUT
    deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        super().connection_lost(exc)

    def arm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = self.loop.call_later(self.read_timeout, self.expire)

    def expire(self) -> None:
        """Close the connection if the request is still being received (not while answering)."""
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.disconnected = True
                self.cycle.message_event.set()
            self.transport.close()


def server_config(app: Any, host: str, port: int, **overrides: Any) -> Any:
    """uvicorn's Config for `qwenfit serve`: the deadline protocol and the limits above."""
    import uvicorn

    settings: dict[str, Any] = {
        "host": host,
        "port": port,
        "http": DeadlineH11Protocol,
        "limit_concurrency": MAX_CONNECTIONS,
        "timeout_keep_alive": KEEP_ALIVE,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "log_level": "info",
    }
    settings.update(overrides)
    return uvicorn.Config(app, **settings)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` and listening; a taken port or an address this machine
    does not have is a one-line `QwenfitError` naming it (exit 1), before the server starts."""
    from qwenfit.errors import QwenfitError

    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, IndexError) as e:
        raise QwenfitError(
            f"cannot listen on {where}: {getattr(e, 'strerror', None) or e}"
        ) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        reason = (e.strerror or str(e)).lower()
        raise QwenfitError(f"cannot listen on {where}: {reason}") from None
    sock.set_inheritable(True)
    return sock
