"""One SQLite connection per thread, opened with QLM's pragmas, pooled, closed together, fork-aware.

A thread gets its own connection on first use (``threading.local``); when the thread ends, the
connection goes back to a small idle pool for the next new thread (or is closed when the pool is
full). A forked child never touches the parent's connections: on a pid change they are abandoned
(kept referenced, never closed — closing would checkpoint/unlock the parent's file state) and fresh
ones are opened.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path

from qlm_kernel.store.errors import map_error, store_error

# Connections inherited across fork(): referenced forever so their destructor never runs in the child.
_ABANDONED: list[sqlite3.Connection] = []
_PRAGMA_NAME = re.compile(r"^[a-z_]{1,64}$")
DEFAULT_BUSY_TIMEOUT = 10.0
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes the -wal file is truncated to after a checkpoint


def check_pragmas(pragmas: Mapping[str, int | str] | None) -> dict[str, int | str]:
    """Validate extra per-connection pragmas (name -> int or word), so they can be formatted safely."""
    from qlm_kernel.errors import ConfigError

    checked: dict[str, int | str] = {}
    for name, value in (pragmas or {}).items():
        ok_value = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_]{1,32}", value) is not None)
        if not isinstance(name, str) or not _PRAGMA_NAME.match(name) or not ok_value:
            raise ConfigError(f"invalid pragma {name!r}={value!r}", hint="pass pragmas as "
                              "{'name': int_or_word}, e.g. {'cache_size': -20000}", pragma=str(name))
        checked[name] = value
    return checked


def open_connection(path: Path, *, readonly: bool, busy_timeout: float,
                    pragmas: Mapping[str, int | str]) -> sqlite3.Connection:
    """A new autocommit connection (transactions are explicit) with QLM's per-connection pragmas.

    Only per-connection pragmas are set here; none of them writes to the file, so opening a foreign,
    corrupt or too-new file leaves it untouched.
    """
    uri = f"{path.as_uri()}?mode={'ro' if readonly else 'rwc'}"
    conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None,
                           check_same_thread=False, cached_statements=256)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        if readonly:
            conn.execute("PRAGMA query_only = ON")
        for name, value in pragmas.items():
            conn.execute(f"PRAGMA {name} = {value}")
    except BaseException:
        conn.close()
        raise
    return conn


class _Lease:
    """A thread's hold on one connection; when the thread (and so its local) dies, it is returned."""

    __slots__ = ("__weakref__", "conn", "pid")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()


def _give_back(pool_ref: weakref.ref[ConnectionPool], conn: sqlite3.Connection, pid: int) -> None:
    """Finalizer of a `_Lease`: hand the connection to the pool, or close it if the pool is gone."""
    if pid != os.getpid():
        return  # inherited across fork: never touch it
    pool = pool_ref()
    if pool is not None:
        pool._release(conn)
        return
    with contextlib.suppress(sqlite3.Error):
        conn.close()


class ConnectionPool:
    """Per-thread connections to one database file, with a small idle pool and pid (fork) checks."""

    def __init__(self, path: Path, *, readonly: bool = False, busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
                 pragmas: Mapping[str, int | str] | None = None, max_idle: int = 4) -> None:
        self.path = path
        self.readonly = readonly
        self.busy_timeout = busy_timeout
        self.pragmas = check_pragmas(pragmas)
        self.max_idle = max_idle
        self._reset_state()

    def _reset_state(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._local = threading.local()
        self._all: set[sqlite3.Connection] = set()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_pid(self) -> None:
        if self._pid != os.getpid():  # forked: abandon what the parent opened, start afresh
            _ABANDONED.extend(self._all)
            closed = self._closed
            self._reset_state()
            self._closed = closed

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        self._check_pid()
        if self._closed:
            raise store_error("the store is closed", code="DB_CLOSED", op="connect", path=self.path)
        lease: _Lease | None = getattr(self._local, "lease", None)
        if lease is not None:
            return lease.conn
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            try:
                conn = open_connection(self.path, readonly=self.readonly, busy_timeout=self.busy_timeout,
                                       pragmas=self.pragmas)
            except sqlite3.Error as exc:
                raise map_error(exc, op="connect", path=self.path) from exc
            with self._lock:
                closed = self._closed
                if not closed:
                    self._all.add(conn)
            if closed:  # close() ran meanwhile
                _close_quietly(conn)
                raise store_error("the store is closed", code="DB_CLOSED", op="connect", path=self.path)
        lease = _Lease(conn)
        finalizer = weakref.finalize(lease, _give_back, weakref.ref(self), conn, lease.pid)
        finalizer.atexit = False
        self._local.lease = lease
        return conn

    def _release(self, conn: sqlite3.Connection) -> None:
        """A thread ended: keep its connection idle for reuse (rolled back), or close it."""
        with self._lock:
            if conn not in self._all:
                return
            keep = not self._closed and len(self._idle) < self.max_idle
            if keep:
                try:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                except sqlite3.Error:
                    keep = False
            if keep:
                self._idle.append(conn)
                return
            self._all.discard(conn)
        _close_quietly(conn)

    def open_count(self) -> int:
        """How many connections this pool holds open (in use by threads + idle)."""
        self._check_pid()
        with self._lock:
            return len(self._all)

    def close(self) -> None:
        """Close every connection of every thread; later use raises DB_CLOSED. Idempotent."""
        self._check_pid()
        with self._lock:
            self._closed = True
            conns = list(self._all)
            self._all.clear()
            self._idle.clear()
        self._local = threading.local()
        for conn in conns:
            _close_quietly(conn)


def _close_quietly(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass
    with contextlib.suppress(sqlite3.Error):
        conn.close()


def busy_timeout_ms(conn: sqlite3.Connection) -> int:
    """The connection's busy timeout in milliseconds (for diagnostics and tests)."""
    return int(conn.execute("PRAGMA busy_timeout").fetchone()[0])


__all__ = ["DEFAULT_BUSY_TIMEOUT", "ConnectionPool", "busy_timeout_ms", "check_pragmas", "open_connection"]
