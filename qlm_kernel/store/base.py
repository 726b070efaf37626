"""The Store's core: open and check the file, migrate it, and run every read/write with retries.

Writes run in short ``BEGIN IMMEDIATE`` transactions (the write lock is taken up front, so a writer
never fails half-way on a lock upgrade). A busy database is waited for by SQLite's busy handler
(``busy_timeout``, 10 s), then retried a bounded number of times with jittered exponential backoff,
and finally reported as ``QLMSystemError(code="DB_BUSY")``. Every sqlite3 error is mapped to a
`QLMSystemError` (see `qlm_kernel.store.errors`) — no bare sqlite3 exception reaches the caller.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from qlm_kernel.errors import ConfigError, QLMSystemError
from qlm_kernel.home import DB_FILENAME
from qlm_kernel.store import migrations as mig
from qlm_kernel.store.connection import DEFAULT_BUSY_TIMEOUT, ConnectionPool
from qlm_kernel.store.errors import is_busy, map_error, store_error

T = TypeVar("T")
_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 2.0


def _backoff(attempt: int) -> float:
    return min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.5)


def default_path() -> Path:
    """``<QLM_HOME>/qlm.db`` (the workspace folder is created if missing)."""
    from qlm_kernel.home import qlm_home

    return qlm_home() / DB_FILENAME


class StoreBase:
    """Connection pool, transactions with retries, schema checks and migrations, stats."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, readonly: bool = False,
                 busy_timeout: float = DEFAULT_BUSY_TIMEOUT, retries: int = 3,
                 pragmas: Mapping[str, int | str] | None = None,
                 migrations: Sequence[mig.Migration] | None = None, housekeeping: bool = True) -> None:
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, (int, float)) or busy_timeout < 0:
            raise ConfigError("busy_timeout must be a number of seconds >= 0", hint="e.g. busy_timeout=10",
                              value=repr(busy_timeout))
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise ConfigError("retries must be an integer between 0 and 100", hint="e.g. retries=3",
                              value=repr(retries))
        steps = mig.MIGRATIONS if migrations is None else migrations
        self.migrations: tuple[mig.Migration, ...] = tuple(steps)
        mig.check_migrations(self.migrations)
        self.path = self._resolve(path, readonly)
        self.readonly = readonly
        self.retries = retries
        self.busy_timeout = float(busy_timeout)
        self._pool = ConnectionPool(self.path, readonly=readonly, busy_timeout=self.busy_timeout,
                                    pragmas=pragmas)
        try:
            self.schema_version = self._open()
            if housekeeping and not readonly:
                self._after_open()
        except BaseException:
            self._pool.close()
            raise

    # -- opening --------------------------------------------------------------------------------------

    @staticmethod
    def _resolve(path: str | os.PathLike[str] | None, readonly: bool) -> Path:
        target = default_path() if path is None else Path(path).expanduser()
        try:
            target = target.resolve()
            if target.is_dir():
                raise store_error(f"the database path is a directory: {target}", code="DB_CANTOPEN",
                                  op="open", path=target, hint="pass the path of a file, e.g. <home>/qlm.db")
            if readonly:
                if not target.is_file():
                    raise store_error(f"no database to open read-only at {target}", code="DB_CANTOPEN",
                                      op="open", path=target, hint="check the path; a read-only store "
                                      "cannot create the file")
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_error(f"cannot prepare the database path {target}: {exc}", code="DB_CANTOPEN",
                              op="open", path=target, errno=exc.errno) from exc
        return target

    def _open(self) -> int:
        """Check the header (refuse foreign or too-new files untouched), enable WAL, migrate."""
        latest = self.migrations[-1].version
        version = self._read("open", self._inspect)
        if version < latest and self.readonly:
            raise store_error(f"the database is at schema version {version} and needs migrating to "
                              f"{latest}, but it was opened read-only", code="DB_READONLY", op="migrate",
                              path=self.path, hint="open it once without readonly=True to migrate it",
                              schema_version=version, latest_version=latest)
        if not self.readonly:
            self._read("enable WAL", lambda c: c.execute("PRAGMA journal_mode = WAL").fetchone())
        for step in self.migrations:
            if step.version > version:
                self._write(f"migrate to v{step.version} ({step.name})",
                            lambda c, s=step: mig.apply_migration(c, s))
        return max(version, latest)

    def _after_open(self) -> None:
        """Housekeeping a writable store does once when it opens (`Store` reaps jobs, prunes)."""

    def _inspect(self, conn: sqlite3.Connection) -> int:
        """The file's schema version, refusing a too-new or foreign file. Its reads share one snapshot:
        read apart, another process's first migration could commit between "version 0" and "has
        tables" and make a fresh QLM store look foreign."""
        conn.execute("BEGIN")
        try:
            return self._inspect_snapshot(conn)
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _inspect_snapshot(self, conn: sqlite3.Connection) -> int:
        version = mig.user_version(conn)  # the first read of the file: NOTADB -> DB_CORRUPT
        latest = self.migrations[-1].version
        if version > latest:
            raise store_error(f"the database was written by a newer QLM (schema version {version}; this "
                              f"QLM knows up to {latest}); it was left untouched", code="DB_TOO_NEW",
                              op="open", path=self.path, hint="upgrade qlm-kernel, or point QLM_HOME at "
                              "another folder", schema_version=version, latest_version=latest)
        foreign = (version == 0 and mig.user_tables(conn)) or (
            version > 0 and mig.application_id(conn) != mig.APPLICATION_ID)
        if foreign:
            raise store_error("the file is an SQLite database of another application, not a QLM store; it "
                              "was left untouched", code="DB_FOREIGN", op="open", path=self.path,
                              hint="point QLM_HOME (or Store(path)) at a folder of its own",
                              schema_version=version, application_id=mig.application_id(conn))
        return version

    # -- running statements ---------------------------------------------------------------------------

    def _run(self, op: str, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        attempts = self.retries + 1
        for attempt in range(attempts):
            conn = self._pool.connection()
            try:
                if not write:
                    return fn(conn)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
                return result
            except sqlite3.Error as exc:
                if is_busy(exc) and attempt + 1 < attempts:
                    time.sleep(_backoff(attempt))
                    continue
                raise map_error(exc, op=op, path=self.path, attempts=attempt + 1) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, op: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` outside a transaction (each statement sees committed data), with retries."""
        return self._run(op, fn, write=False)

    def _write(self, op: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in one ``BEGIN IMMEDIATE`` transaction, retried whole if the lock is busy."""
        return self._run(op, fn, write=True)

    def _snapshot(self, op: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run several reads in one deferred transaction, so they see one consistent state."""

        def in_txn(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                _rollback(conn)

        return self._run(op, in_txn, write=False)

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True after `close()`."""
        return self._pool.closed

    def close(self) -> None:
        """Close the connections of every thread (idempotent). Call when no other thread is using it."""
        self._pool.close()

    def __enter__(self) -> StoreBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"v{self.schema_version}"
        return f"<Store {str(self.path)!r} {state}{' readonly' if self.readonly else ''}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # A Store pickles as "open the same file again" (connections never cross processes).
        return (_reopen, (type(self), str(self.path), self.readonly, self.busy_timeout, self.retries,
                          dict(self._pool.pragmas)))

    # -- maintenance ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Path, file and WAL sizes, schema version, journal mode and row counts per table."""

        def collect(conn: sqlite3.Connection) -> dict[str, Any]:
            tables = {name: conn.execute(f'SELECT COUNT(*) FROM "{name.replace(chr(34), chr(34) * 2)}"')
                      .fetchone()[0] for name in mig.user_tables(conn)}
            return {"schema_version": mig.user_version(conn),
                    "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
                    "page_size": conn.execute("PRAGMA page_size").fetchone()[0],
                    "page_count": conn.execute("PRAGMA page_count").fetchone()[0],
                    "freelist_count": conn.execute("PRAGMA freelist_count").fetchone()[0],
                    "tables": tables}

        info = self._snapshot("stats", collect)
        return {"path": str(self.path), "size_bytes": _file_size(self.path),
                "wal_bytes": _file_size(Path(f"{self.path}-wal")), "readonly": self.readonly,
                "sqlite_version": sqlite3.sqlite_version, **info}

    def integrity_check(self, max_errors: int = 100) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``'ok'``, or the problems found, one per line.

        Damage so bad that the check itself stops is reported as ``'corrupt: <sqlite message>'``
        rather than raised, so a status tool always gets a verdict.
        """
        limit = max(1, int(max_errors))
        try:
            rows = self._read("integrity check",
                              lambda c: c.execute(f"PRAGMA integrity_check({limit})").fetchall())
        except QLMSystemError as exc:
            if exc.code != "DB_CORRUPT":
                raise
            return f"corrupt: {exc.context.get('sqlite_message', exc.message)}"
        return "\n".join(str(r[0]) for r in rows)

    def checkpoint(self, mode: str = "PASSIVE") -> dict[str, int]:
        """Copy the WAL into the main file (``PASSIVE``/``FULL``/``RESTART``/``TRUNCATE``)."""
        mode = str(mode).upper()
        if mode not in {"PASSIVE", "FULL", "RESTART", "TRUNCATE"}:
            raise ConfigError(f"unknown checkpoint mode {mode!r}", hint="use PASSIVE, FULL, RESTART or "
                              "TRUNCATE", value=mode)
        busy, log, done = self._read("checkpoint",
                                     lambda c: tuple(c.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()))
        return {"busy": busy, "wal_frames": log, "checkpointed": done}


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _reopen(cls: type[StoreBase], path: str, readonly: bool, busy_timeout: float, retries: int,
            pragmas: dict[str, int | str]) -> StoreBase:
    return cls(path, readonly=readonly, busy_timeout=busy_timeout, retries=retries, pragmas=pragmas)
