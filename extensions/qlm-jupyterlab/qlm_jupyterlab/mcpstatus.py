"""MCP server status, derived from the event log: there is no registry of MCP servers across processes.

Each server announces itself on the bus (``mcp.server.started`` with its url, ``mcp.server.stopped``)
and its clients (``mcp.client.connected`` once per client name and version, ``mcp.client.disconnected``
when an SSE stream closes); tool calls are ``mcp.tool.*``. Processes that record events (kernels
that ran a backtest, ``qlm mcp --stdio``) leave these in the store, so the latest started/stopped event
per url says whether a server should be up. A process killed without stopping leaves a "running"
entry: for loopback urls a TCP probe reports whether anything still listens (``reachable``).
Tokens are never stored, so the copied client configuration carries a placeholder.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from urllib.parse import urlsplit

from qlm_kernel.session.history import tail_events

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ACTIVE_SECONDS = 300.0  # a client with a tool call this recent counts as active
TOKEN_PLACEHOLDER = "Bearer <token printed by `qlm mcp --http` or handle.token in the kernel>"


class MCPStatus:
    """Folds ``mcp.*`` events incrementally (only new ids are read on each call)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last_id = 0
        self.servers: dict[str, dict[str, Any]] = {}
        self.clients: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.tool_calls = 0
        self.tool_failures = 0
        self.last_tool: dict[str, Any] | None = None
        self.sse_disconnects = 0

    def update(self, home: Any, page: int = 1000) -> None:
        """Read the ``mcp.*`` events written to the workspace ``home`` since the last call."""
        with self._lock:
            while True:
                batch = tail_events(self.last_id, page, ["mcp.*"], home=home)
                for event in batch["events"]:
                    self._apply(event)
                self.last_id = batch["last_id"]
                if len(batch["events"]) < page:
                    return

    def _apply(self, event: dict[str, Any]) -> None:
        topic, when = event["topic"], event.get("time")
        payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
        if topic in ("mcp.server.started", "mcp.server.stopped"):
            transport = str(payload.get("transport") or "http")
            key = str(payload.get("url") or transport)
            record = self.servers.setdefault(key, {"transport": transport, "url": payload.get("url"),
                                                   "starts": 0, "stops": 0})
            if topic == "mcp.server.started":
                record.update(status="running", started_at=when, sse_url=payload.get("sse_url"))
                record["starts"] += 1
            else:
                record.update(status="stopped", stopped_at=when, reason=payload.get("reason"))
                record["stops"] += 1
        elif topic == "mcp.client.connected":
            key = (str(payload.get("transport")), str(payload.get("client")), str(payload.get("version")))
            record = self.clients.setdefault(key, {"client": payload.get("client"),
                                                   "version": payload.get("version"),
                                                   "transport": payload.get("transport")})
            record.update(connected_at=when, protocol=payload.get("protocol"))
        elif topic == "mcp.client.disconnected":
            self.sse_disconnects += 1
        elif topic == "mcp.tool.called":
            self.tool_calls += 1
            self.last_tool = {"tool": payload.get("tool"), "time": when}
        elif topic == "mcp.tool.failed":
            self.tool_failures += 1

    def snapshot(self, now: float) -> dict[str, Any]:
        """Servers (newest first), clients seen and tool-call counts."""
        with self._lock:
            servers = sorted((dict(s) for s in self.servers.values()),
                             key=lambda s: -(s.get("started_at") or 0))
            clients = sorted((dict(c) for c in self.clients.values()),
                             key=lambda c: -(c.get("connected_at") or 0))
            last_tool = dict(self.last_tool) if self.last_tool else None
            calls, failures, disconnects = self.tool_calls, self.tool_failures, self.sse_disconnects
        active = bool(last_tool and now - (last_tool.get("time") or 0) <= ACTIVE_SECONDS)
        return {"servers": servers, "clients": clients, "tool_calls": calls, "tool_failures": failures,
                "last_tool_call": last_tool, "recently_active": active, "sse_disconnects": disconnects,
                "derived_from": "events"}


def client_configs(url: str | None, qlm_home: str) -> dict[str, Any]:
    """``mcpServers`` entries to paste into an MCP client: HTTP (token placeholder) and stdio."""
    configs: dict[str, Any] = {
        "stdio": {"mcpServers": {"qlm": {"command": "qlm", "args": ["mcp", "--stdio"],
                                         "env": {"QLM_HOME": qlm_home}}}},
    }
    if url:
        configs["http"] = {"mcpServers": {"qlm": {"type": "http", "url": url,
                                                  "headers": {"Authorization": TOKEN_PLACEHOLDER}}}}
    return configs


async def reachable(url: str | None, timeout: float = 0.3) -> bool | None:
    """Whether a TCP connection to a loopback url's port succeeds; None for other hosts (not probed)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK or parts.port is None:
        return None
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True
