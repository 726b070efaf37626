"""Serve the MCP server over HTTP in a daemon thread: streamable HTTP at ``/mcp``, legacy SSE at ``/sse``.

`start()` is what a notebook calls: it returns a `ServerHandle` with the URL, the token, a
ready-to-paste client configuration and `stop()`. Both transports share the kernel's bus and store.
Each start builds a fresh MCPServer and Starlette app (the SDK's session manager runs once), and
uvicorn is told to give up on open streams after 2 s so `stop()` never hangs; start/stop cycles
leave no thread or port behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from qlm_kernel.errors import QLMError, QLMSystemError
from qlm_kernel.events import publish
from qlm_kernel.events.topics import MCP_SERVER_STARTED, MCP_SERVER_STOPPED
from qlm_kernel.mcp.security import (
    MAX_REQUEST_BYTES,
    StaticTokenVerifier,
    auth_settings,
    mask_token,
    resolve_token,
    transport_security,
)

_lock = threading.Lock()
_running: list[ServerHandle] = []


class ServerHandle:
    """A running HTTP MCP server: ``url`` (streamable HTTP), ``sse_url``, ``token``, ``stop()``."""

    def __init__(
        self, uvicorn_server: Any, thread: threading.Thread, host: str, port: int, token: str, tracker: Any
    ) -> None:
        self._server = uvicorn_server
        self._thread = thread
        self.host, self.port, self.token = host, port, token
        self.tracker = tracker
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{port}"
        self.url = f"{self.base_url}/mcp"
        self.sse_url = f"{self.base_url}/sse"
        self.started_at = time.time()
        self.config_path: Path | None = None

    @property
    def running(self) -> bool:
        """True while the server thread is serving."""
        return self._thread.is_alive()

    def headers(self) -> dict[str, str]:
        """The HTTP headers a client must send."""
        return {"Authorization": f"Bearer {self.token}"}

    def client_config(self, name: str = "qlm", *, reveal: bool = True) -> dict[str, Any]:
        """The ``mcpServers`` entry for an MCP client (Claude Desktop/Code, Cursor, VS Code, ...);
        ``reveal=False`` masks the token (what the handle's repr shows)."""
        token = self.token if reveal else mask_token(self.token)
        headers = {"Authorization": f"Bearer {token}"}
        return {"mcpServers": {name: {"type": "http", "url": self.url, "headers": headers}}}

    def write_config_file(self) -> Path:
        """The full client configuration (token included) in a file only this user can read; its path."""
        from qlm_kernel.home import workspace_dir

        path = workspace_dir("mcp") / f"client-{self.port}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(self.client_config(), out, indent=2)
        os.chmod(path, 0o600)
        self.config_path = path
        return path

    def info(self) -> dict[str, Any]:
        """What `get_system_status` reports about this server (never the token)."""
        return {
            "transport": "http",
            "url": self.url,
            "sse_url": self.sse_url,
            "running": self.running,
            "uptime_s": time.time() - self.started_at,
        }

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread (open streams are cut after 2 s)."""
        self._server.should_exit = True
        self._thread.join(timeout)
        with _lock:
            if self in _running:
                _running.remove(self)
        if self.config_path is not None:
            self.config_path.unlink(missing_ok=True)
        if self._thread.is_alive():
            raise QLMSystemError(
                "the MCP server thread did not stop",
                code="MCP_STOP_TIMEOUT",
                hint="it is a daemon thread and ends with the kernel",
                port=self.port,
            )
        publish(MCP_SERVER_STOPPED, {"transport": "http", "url": self.url, "reason": "stop()"}, source="mcp")

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _where_the_token_is(self) -> str:
        where = f"in {self.config_path} (readable only by you), or " if self.config_path else ""
        return f"the token is masked here (outputs are saved to disk): it is {where}in server.client_config()"

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        config = json.dumps(self.client_config(reveal=False), indent=2)
        return f"<QLM MCP server {state} at {self.url}>\n{config}\n{self._where_the_token_is()}"

    def _repr_html_(self) -> str:
        import html

        config = html.escape(json.dumps(self.client_config(reveal=False), indent=2))
        state = "running" if self.running else "stopped"
        return (
            f"<div><b>QLM MCP server</b> {state} at <code>{html.escape(self.url)}</code> "
            f"(legacy SSE: <code>{html.escape(self.sse_url)}</code>)<br>Your MCP client's "
            f"configuration:<pre>{config}</pre>{html.escape(self._where_the_token_is())}.</div>"
        )


def build_app(
    host: str,
    port: int,
    token: str,
    tracker: Any,
    info: Any,
    allowed_hosts: list[str] | None = None,
    allowed_origins: list[str] | None = None,
    max_request_bytes: int = MAX_REQUEST_BYTES,
) -> Any:
    """One Starlette app serving both transports behind the token and the Host/Origin checks."""
    from starlette.applications import Starlette

    from qlm_kernel.mcp.clients import SSEStreamCounter
    from qlm_kernel.mcp.server import build_server

    security = transport_security(host, allowed_hosts, allowed_origins)
    server = build_server(
        tracker, info, token_verifier=StaticTokenVerifier(token), auth=auth_settings(host, port)
    )
    http_app = server.streamable_http_app(
        transport_security=security, host=host, max_request_body_size=max_request_bytes
    )
    sse_app = server.sse_app(transport_security=security, host=host, max_request_body_size=max_request_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        async with server.session_manager.run():
            yield

    app = Starlette(
        routes=[*http_app.routes, *sse_app.routes], middleware=http_app.user_middleware, lifespan=lifespan
    )
    return SSEStreamCounter(app, tracker)


def start(
    port: int = 0,
    host: str = "127.0.0.1",
    token: str | None = None,
    *,
    token_file: str | os.PathLike[str] | None = None,
    allowed_hosts: list[str] | None = None,
    allowed_origins: list[str] | None = None,
    timeout: float = 15.0,
) -> ServerHandle:
    """Serve QLM's MCP tools over HTTP from a daemon thread of this process; returns a `ServerHandle`.

    ``port=0`` picks a free port. ``token``: the bearer token (else read from ``token_file``, else
    ``$QLM_MCP_TOKEN``, else random). The full client configuration is written to
    ``$QLM_HOME/mcp/client-PORT.json`` (mode 0600, removed on stop); the handle's repr masks the token.
    Binds 127.0.0.1 unless ``host`` says otherwise (then ``allowed_hosts`` is required).
    """
    import socket

    import uvicorn

    from qlm_kernel.mcp.clients import ClientTracker
    from qlm_kernel.session import ensure_event_recorder, recording_enabled

    if recording_enabled(None):
        ensure_event_recorder()  # what assistants do reaches the store's event log (JupyterLab sidebar)
    token = resolve_token(token, token_file)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise QLMSystemError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            code="MCP_BIND",
            hint="pick another port, or port=0 for a free one",
            host=host,
            port=port,
        ) from exc
    port = sock.getsockname()[1]
    tracker = ClientTracker(default_transport="streamable-http")
    holder: dict[str, ServerHandle] = {}
    app = build_app(
        host, port, token, tracker, lambda: holder["handle"].info(), allowed_hosts, allowed_origins
    )
    config = uvicorn.Config(
        app, lifespan="on", timeout_graceful_shutdown=2, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"qlm-mcp-{port}", daemon=True
    )
    handle = ServerHandle(server, thread, host, port, token, tracker)
    holder["handle"] = handle
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            sock.close()
            raise QLMSystemError(
                "the MCP server did not start",
                code="MCP_START",
                port=port,
                hint="see the kernel's log for uvicorn's message",
            )
        time.sleep(0.01)
    with _lock:
        _running.append(handle)
    with contextlib.suppress(OSError, QLMError):  # the handle still works; only the file is missing
        handle.write_config_file()
    publish(
        MCP_SERVER_STARTED, {"transport": "http", "url": handle.url, "sse_url": handle.sse_url}, source="mcp"
    )
    return handle


def running_servers() -> list[ServerHandle]:
    """The HTTP servers started in this process and not stopped yet."""
    with _lock:
        return list(_running)


def stop_all() -> None:
    """Stop every server `start` started in this process."""
    for handle in running_servers():
        handle.stop()
