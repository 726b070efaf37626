"""Strategy versions: every write of a strategy's code is kept, numbered 1, 2, 3, ... per strategy."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

from qlm_kernel.errors import ConfigError
from qlm_kernel.store import codec
from qlm_kernel.store.base import StoreBase

AUTHORS = ("user", "assistant", "healer")
_VERSION_COLUMNS = ("v.id, s.name AS strategy, v.strategy_id, v.version, v.sha256, v.author, v.message, "
                    "v.created_at, length(v.code) AS size")
_FROM = "FROM strategy_versions v JOIN strategies s ON s.id = v.strategy_id"


def code_sha256(code: str) -> str:
    """The sha256 hex digest of the code's UTF-8 bytes (how versions are compared)."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def _check(name: Any, code: Any, author: Any, message: Any) -> None:
    codec.require_text(name, "strategy name")
    if not isinstance(code, str):
        raise ConfigError("strategy code must be a string", hint="pass the source text of the file",
                          strategy=name, value=type(code).__name__)
    if author not in AUTHORS:
        raise ConfigError(f"unknown author {author!r}", hint=f"author is one of {', '.join(AUTHORS)}",
                          strategy=name, value=repr(author))
    if message is not None and not isinstance(message, str):
        raise ConfigError("message must be a string or None", hint="pass a short description",
                          strategy=name, value=repr(message)[:200])


def _select(conn: sqlite3.Connection, where: str, args: tuple[Any, ...], *, code: bool = True,
            order: str = "") -> list[dict[str, Any]]:
    cols = _VERSION_COLUMNS + (", v.code" if code else "")
    return codec.rows_dicts(conn.execute(f"SELECT {cols} {_FROM} WHERE {where} {order}", args))


def _latest(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    rows = _select(conn, "s.name = ?", (name,), order="ORDER BY v.version DESC LIMIT 1")
    return rows[0] if rows else None


def insert_version(conn: sqlite3.Connection, name: str, code: str, author: str,
                   message: str | None) -> dict[str, Any]:
    """Add the next version of `name` (creating the strategy) inside the caller's write transaction."""
    now = codec.now_iso()
    conn.execute("INSERT INTO strategies (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                 (name, now))
    sid = conn.execute("SELECT id FROM strategies WHERE name = ?", (name,)).fetchone()[0]
    version = conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM strategy_versions "
                           "WHERE strategy_id = ?", (sid,)).fetchone()[0]
    cur = conn.execute("INSERT INTO strategy_versions (strategy_id, version, code, sha256, author, message, "
                       "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (sid, version, code, code_sha256(code), author, message, now))
    record = _select(conn, "v.id = ?", (cur.lastrowid,))[0]
    record["created"] = True
    return record


def ensure_version(conn: sqlite3.Connection, name: str, code: str, author: str,
                   message: str | None) -> dict[str, Any]:
    """The latest version of `name` if its code is identical, else a new version (in the caller's txn)."""
    latest = _latest(conn, name)
    if latest is not None and latest["sha256"] == code_sha256(code):
        latest["created"] = False
        return latest
    return insert_version(conn, name, code, author, message)


class StrategiesMixin(StoreBase):
    """Versioned strategy code: save, ensure, history, get, latest, list."""

    def save_strategy_version(self, name: str, code: str, author: str = "user",
                              message: str | None = None) -> dict[str, Any]:
        """Record a new version of `name` — every write is kept, even identical code.

        Returns the version record: id, strategy, strategy_id, version, sha256, author, message,
        created_at, size, code, created (True).
        """
        _check(name, code, author, message)
        return self._write("save strategy version", lambda c: insert_version(c, name, code, author, message))

    def ensure_strategy_version(self, name: str, code: str, author: str = "user",
                                message: str | None = None) -> dict[str, Any]:
        """The version whose code is `code`: the latest if unchanged, else a new one (``created`` says).

        Meant for recording runs: running the same file twice does not add versions.
        """
        _check(name, code, author, message)
        return self._write("ensure strategy version",
                           lambda c: ensure_version(c, name, code, author, message))

    def strategy_history(self, name: str, *, include_code: bool = False) -> list[dict[str, Any]]:
        """All versions of `name`, oldest first (without the code unless `include_code`); [] if unknown."""
        codec.require_text(name, "strategy name")
        return self._read("strategy history", lambda c: _select(
            c, "s.name = ?", (name,), code=include_code, order="ORDER BY v.version"))

    def get_strategy_version(self, version_id: int | tuple[str, int]) -> dict[str, Any] | None:
        """One version with its code, by version id or by ``(name, version)``; None if there is none."""
        if isinstance(version_id, tuple):
            if len(version_id) != 2:
                raise ConfigError("pass a version id or a (name, version) pair", hint="e.g. ('sma.py', 3)",
                                  value=repr(version_id))
            name = codec.require_text(version_id[0], "strategy name")
            number = codec.require_int(version_id[1], "version", minimum=1)
            rows = self._read("get strategy version", lambda c: _select(
                c, "s.name = ? AND v.version = ?", (name, number)))
        else:
            vid = codec.require_int(version_id, "version id", minimum=1)
            rows = self._read("get strategy version", lambda c: _select(c, "v.id = ?", (vid,)))
        return rows[0] if rows else None

    def latest_strategy_version(self, name: str) -> dict[str, Any] | None:
        """The newest version of `name` with its code, or None."""
        codec.require_text(name, "strategy name")
        return self._read("latest strategy version", lambda c: _latest(c, name))

    def list_strategies(self) -> list[dict[str, Any]]:
        """Every strategy: name, versions, latest_version, latest_version_id, latest_sha256, latest_author,
        created_at, updated_at; by name."""
        sql = ("SELECT s.name, s.created_at, COUNT(v.id) AS versions, MAX(v.version) AS latest_version "
               "FROM strategies s LEFT JOIN strategy_versions v ON v.strategy_id = s.id "
               "GROUP BY s.id ORDER BY s.name")
        latest_sql = ("SELECT v.id, v.sha256, v.author, v.created_at FROM strategy_versions v "
                      "JOIN strategies s ON s.id = v.strategy_id WHERE s.name = ? AND v.version = ?")

        def collect(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            out = []
            for row in codec.rows_dicts(conn.execute(sql)):
                latest = conn.execute(latest_sql, (row["name"], row["latest_version"])).fetchone()
                row.update(latest_version_id=latest["id"] if latest else None,
                           latest_sha256=latest["sha256"] if latest else None,
                           latest_author=latest["author"] if latest else None,
                           updated_at=latest["created_at"] if latest else row["created_at"])
                out.append(row)
            return out

        return self._snapshot("list strategies", collect)
