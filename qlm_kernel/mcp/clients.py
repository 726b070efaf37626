"""Which MCP clients are talking to this kernel: seen per request, announced once on the bus.

MCP's 2026 protocol is per-request (no session handshake): every request carries the client's name
and version in ``_meta``, older clients send them once in ``initialize``. A client is keyed by
(transport, name, version) and counts as *connected* while it made a request within
``active_seconds`` (default 300 s) or holds an open SSE stream. The first request of a new key
publishes ``mcp.client.connected``; an SSE stream closing publishes ``mcp.client.disconnected``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from qlm_kernel.events import publish
from qlm_kernel.events.topics import MCP_CLIENT_CONNECTED, MCP_CLIENT_DISCONNECTED

CLIENT_INFO_META = "io.modelcontextprotocol/clientInfo"
PROTOCOL_META = "io.modelcontextprotocol/protocolVersion"


def _client_info(params: Any) -> tuple[dict[str, Any], str | None]:
    """(clientInfo, protocol version) from a request's params: ``_meta`` or ``initialize`` fields."""
    if not isinstance(params, dict):
        return {}, None
    meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
    info = meta.get(CLIENT_INFO_META) or params.get("clientInfo") or {}
    protocol = meta.get(PROTOCOL_META) or params.get("protocolVersion")
    return (info if isinstance(info, dict) else {}), protocol


def _transport_of(request: Any, default: str) -> str:
    path = getattr(getattr(request, "url", None), "path", "") or ""
    if path.startswith("/messages"):
        return "sse"
    if path.startswith("/mcp"):
        return "streamable-http"
    return default


class ClientTracker:
    """Thread-safe registry of MCP clients, fed by a server middleware and an ASGI wrapper."""

    def __init__(self, default_transport: str = "stdio", active_seconds: float = 300.0) -> None:
        self.default_transport = default_transport
        self.active_seconds = active_seconds
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._sse_open = 0
        self._sse_ids = itertools.count(1)

    async def middleware(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        """MCPServer middleware: note the client behind every request, then handle it."""
        info, protocol = _client_info(ctx.params)
        if ctx.request_id is not None or info:
            self.seen(_transport_of(ctx.request, self.default_transport), info, protocol, ctx.method)
        return await call_next(ctx)

    def seen(self, transport: str, info: dict[str, Any], protocol: str | None, method: str) -> None:
        """Record one request of a client; announce the client the first time it is seen."""
        name, version = str(info.get("name") or "unknown"), str(info.get("version") or "")
        key = (transport, name, version)
        now = time.time()
        with self._lock:
            record = self._clients.get(key)
            new = record is None
            if new:
                record = {
                    "transport": transport,
                    "name": name,
                    "version": version,
                    "first_seen": now,
                    "requests": 0,
                    "tool_calls": 0,
                }
                self._clients[key] = record
            record.update(last_seen=now, protocol=protocol or record.get("protocol"))
            record["requests"] += 1
            record["tool_calls"] += method == "tools/call"
        if new:
            publish(
                MCP_CLIENT_CONNECTED,
                {"client": name, "version": version, "transport": transport, "protocol": protocol},
                source="mcp",
            )

    def sse_opened(self) -> int:
        """Count an SSE stream as open; returns its id."""
        with self._lock:
            self._sse_open += 1
            return next(self._sse_ids)

    def sse_closed(self, stream_id: int) -> None:
        """Count an SSE stream as closed and announce the disconnect."""
        with self._lock:
            self._sse_open = max(0, self._sse_open - 1)
        publish(MCP_CLIENT_DISCONNECTED, {"transport": "sse", "stream_id": stream_id}, source="mcp")

    def snapshot(self) -> dict[str, Any]:
        """Connected clients (active recently or on an open SSE stream) and everyone seen."""
        now = time.time()
        with self._lock:
            clients = [dict(c) for c in self._clients.values()]
            sse_open = self._sse_open
        active = [c for c in clients if now - c["last_seen"] <= self.active_seconds]
        return {
            "connected": max(len(active), sse_open),
            "open_sse_streams": sse_open,
            "active_seconds": self.active_seconds,
            "clients": sorted(clients, key=lambda c: -c["last_seen"]),
        }


class SSEStreamCounter:
    """ASGI wrapper counting open ``GET /sse`` streams on a `ClientTracker`."""

    def __init__(self, app: Any, tracker: ClientTracker, sse_path: str = "/sse") -> None:
        self.app = app
        self.tracker = tracker
        self.sse_path = sse_path

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("path") != self.sse_path or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        opened = False
        stream_id = 0

        async def counting_send(message: dict[str, Any]) -> None:
            nonlocal opened, stream_id
            if message.get("type") == "http.response.start" and message.get("status") == 200 and not opened:
                opened = True
                stream_id = self.tracker.sse_opened()
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            if opened:
                self.tracker.sse_closed(stream_id)
