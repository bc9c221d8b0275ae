"""Stage 8, the service: qwenfit over HTTP (REST API + a page) and as an MCP server.

An interface layer beside `cli`, over the same public API, and never importing it. `service`
holds the request models and the handlers (no web framework), `app` the FastAPI application
(`qwenfit serve`), `mcp_server` the MCP tools (`qwenfit mcp`), `page/` the static page. Needs
the `serve` extra: pip install 'qwenfit[serve]'.
"""

from __future__ import annotations

from qwenfit.lazy import attach

TYPE_CHECKING = False
if TYPE_CHECKING:
    from qwenfit.serve.app import create_app
    from qwenfit.serve.mcp_server import create_mcp
    from qwenfit.serve.service import Service

__all__ = ["Service", "create_app", "create_mcp"]
__getattr__, __dir__ = attach(
    __name__,
    {"Service": ".service", "create_app": ".app", "create_mcp": ".mcp_server"},
)
