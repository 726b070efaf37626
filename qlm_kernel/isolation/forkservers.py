"""The process's fork servers, shared by its worker pools: one per worker environment.

A kernel or MCP server has two pools (strategy code, paper sessions) whose workers get the same scrubbed
environment; both fork from one warmed server, so its start-up (the imports and the engine's load, about
a CPU-second) and its memory are paid once instead of once per pool. Pools started while the environment
differs (a variable set in between) get a server of their own started with that environment, so a pool's
workers always see the environment of when the pool first needed a server. A server stops when the last
pool using it shuts down; a pool that finds its server dead starts another, which every pool still using
the dead one then shares (the dead one's workers died with it and are replaced as usual).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from qlm_kernel.isolation.forkserver import ForkServer

EnvKey = tuple[tuple[str, str], ...]


class ForkServers:
    """Fork servers keyed by worker environment, each with the set of pools (by id) using it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[EnvKey, tuple[ForkServer, set[int]]] = {}

    def acquire(self, user: int, env: Mapping[str, str], spawn: Callable[..., Any],
                timeout: float) -> ForkServer:
        """The running server for ``env`` (started through ``spawn`` when there is none, or it died),
        now counted as used by ``user``. Raises ``OSError`` or ``RuntimeError`` when it cannot start."""
        key: EnvKey = tuple(sorted(env.items()))
        with self._lock:
            server, users = self._servers.pop(key, (None, set()))
            if server is not None and server.running():
                users.add(user)
                self._servers[key] = (server, users)
                return server
            if server is not None:
                server.close()
            server = ForkServer.start(spawn, dict(env), timeout)
            self._servers[key] = (server, {*users, user})
            return server

    def release(self, user: int, server: ForkServer) -> None:
        """``user`` no longer uses ``server``; stop it when nobody does."""
        with self._lock:
            for key, (known, users) in list(self._servers.items()):
                if known is server:
                    users.discard(user)
                    if users:
                        return
                    del self._servers[key]
                    break
        server.close()  # the last user, or a server already replaced: it is no one's now
