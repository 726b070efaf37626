"""QLM's MCP server: AI assistants read, write, run and optimize strategies in this kernel.

In a notebook::

    import qlm_kernel.mcp
    server = qlm_kernel.mcp.start()      # streamable HTTP at server.url, legacy SSE at server.sse_url
    server                               # shows the client configuration to paste
    server.stop()

Stand-alone: ``qlm mcp --stdio`` or ``qlm mcp --http``. Tools: `qlm_kernel.mcp.tools`; the server
and its error handling: `qlm_kernel.mcp.server`; security: `qlm_kernel.mcp.security`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerHandle", "build_server", "running_servers", "serve_stdio", "start", "stop_all"]


def __getattr__(name: str) -> Any:
    # Lazy: importing qlm_kernel.mcp must not pull in the SDK, Starlette and uvicorn until used.
    if name in {"start", "ServerHandle", "running_servers", "stop_all"}:
        from qlm_kernel.mcp import http

        return getattr(http, name)
    if name == "build_server":
        from qlm_kernel.mcp.server import build_server

        return build_server
    if name == "serve_stdio":
        from qlm_kernel.mcp.stdio import serve_stdio

        return serve_stdio
    raise AttributeError(f"module 'qlm_kernel.mcp' has no attribute {name!r}")
