"""Helpers for the service tests: a real uvicorn server on a free loopback port, in a thread,
a plain HTTP server for fake upstreams (Hub, Kubernetes API, runtimes), and a socket guard that
lets tests reach loopback only (conftest refuses every connection)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

ORIGINAL_CONNECT = socket.socket.connect


def loopback_connect(sock: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else address
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = host == "localhost"
    if not ok:
        raise AssertionError(f"a test tried to reach {address!r}, not loopback")
    return ORIGINAL_CONNECT(sock, address)


def allow_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", loopback_connect)


class LoopbackHTTP:
    """The standard library's HTTP server for one handler class, on a free loopback port and
    served from a daemon thread: what the tests' fake upstreams run on."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll: shutdown() waits for the loop to notice, 0.5 s per server by default.
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(**app_options: Any) -> Iterator[str]:
    """`qwenfit.serve.app.create_app(**app_options)` under uvicorn; yields its base URL."""
    import uvicorn

    from qwenfit.serve.app import create_app

    port = free_port()
    config = uvicorn.Config(
        create_app(**app_options), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
