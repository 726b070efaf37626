"""Serve the MCP server over stdio (the process's stdin/stdout) — what ``qlm mcp --stdio`` runs.

While serving, the SDK points fd 1 at stderr, so a strategy's ``print`` cannot corrupt the wire.
Events of this process are persisted to the workspace store (unless QLM_RECORD_RUNS=0), so a
notebook or the JupyterLab sidebar sees what the assistant does through this server.
"""

from __future__ import annotations

import time

from qlm_kernel.events import publish
from qlm_kernel.events.topics import MCP_SERVER_STARTED, MCP_SERVER_STOPPED


def serve_stdio() -> None:
    """Block serving MCP over stdin/stdout until the client closes stdin."""
    import anyio

    from qlm_kernel.mcp.clients import ClientTracker
    from qlm_kernel.mcp.server import build_server
    from qlm_kernel.session import ensure_event_recorder, recording_enabled, stop_event_recorder

    if recording_enabled(None):
        ensure_event_recorder()
    tracker = ClientTracker(default_transport="stdio")
    started = time.time()
    server = build_server(tracker, lambda: {"transport": "stdio", "uptime_s": time.time() - started})
    publish(MCP_SERVER_STARTED, {"transport": "stdio"}, source="mcp")
    try:
        anyio.run(server.run_stdio_async)
    finally:
        publish(MCP_SERVER_STOPPED, {"transport": "stdio", "reason": "stdin closed"}, source="mcp")
        stop_event_recorder()
