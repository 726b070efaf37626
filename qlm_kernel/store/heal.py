"""Self-healing sessions and their steps: every run, prompt, reply, refusal, patch and rollback is kept.

A session row is one ``qlm.heal`` call (strategy, file, model, attempts, outcome, the original and
final strategy versions); its steps are appended in order as they happen, each with its kind, the
attempt it belongs to, start/end times and a JSON ``data`` payload (trace, prompt, reply, diff, ...).
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from qlm_kernel.errors import ConfigError
from qlm_kernel.store import codec
from qlm_kernel.store.base import StoreBase

HEAL_STATUSES = ("running", "healed", "passed", "not_healed", "diagnosed", "error")
HEAL_FINAL_STATUSES = HEAL_STATUSES[1:]
HEAL_STEP_KINDS = ("run", "diagnose", "prompt", "thinking", "reply", "refused", "patch", "verify",
                   "rollback", "finished")
_SESSION_JSON = ("config", "diagnosis", "error")
_SESSION_COLUMNS = ("id, strategy, path, status, healed, attempts, max_attempts, model, original_version_id, "
                    "final_version_id, config, diagnosis, error, created_at, updated_at, finished_at")
_STEP_COLUMNS = ('id, session_id, "index", attempt, kind, ok, started_at, ended_at, duration_s, '
                 "strategy_version_id, data")


def _session_dict(row: sqlite3.Row | None) -> dict[str, Any] | None:
    record = codec.row_dict(row, _SESSION_JSON)
    if record is not None:
        record["healed"] = bool(record["healed"])
    return record


def _step_dict(row: sqlite3.Row) -> dict[str, Any]:
    record = codec.row_dict(row, ("data",))
    assert record is not None
    record["ok"] = None if record["ok"] is None else bool(record["ok"])
    return record


def _not_found(session_id: str) -> ConfigError:
    return ConfigError(f"no heal session with id {session_id!r}", code="NOT_FOUND", session_id=session_id,
                       hint="list them with store.list_heal_sessions()")


def _version_id(value: Any, field: str) -> int | None:
    return codec.require_int(value, field, minimum=1, allow_none=True)


class HealMixin(StoreBase):
    """Heal sessions: create, append step, finish, get (with steps), list."""

    def create_heal_session(self, strategy: str, *, max_attempts: int, path: str | None = None,
                            model: str | None = None, original_version_id: int | None = None,
                            config: Any = None, session_id: str | None = None) -> str:
        """A new 'running' session; returns its id (12 hex digits unless `session_id` is given)."""
        codec.require_text(strategy, "strategy name")
        attempts = codec.require_int(max_attempts, "max_attempts")
        sid = uuid.uuid4().hex[:12] if session_id is None else codec.require_text(session_id, "session id",
                                                                                  max_len=64)
        values = (sid, strategy, None if path is None else str(path), attempts,
                  None if model is None else codec.require_text(model, "model", max_len=200),
                  _version_id(original_version_id, "original_version_id"), codec.dumps(config))

        def insert(conn: sqlite3.Connection) -> str:
            now = codec.now_iso()
            conn.execute("INSERT INTO heal_sessions (id, strategy, path, max_attempts, model, "
                         "original_version_id, config, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (*values, now, now))
            return sid

        return self._write("create heal session", insert)

    def add_heal_step(self, session_id: str, *, index: int, attempt: int, kind: str, ok: bool | None,
                      started_at: Any, ended_at: Any, data: Any = None,
                      strategy_version_id: int | None = None) -> int:
        """Append one step (kind in `HEAL_STEP_KINDS`; times as datetimes, epoch seconds or ISO text)."""
        codec.require_text(session_id, "session id", max_len=64)
        if kind not in HEAL_STEP_KINDS:
            raise ConfigError(f"unknown heal step kind {kind!r}", hint=f"one of {', '.join(HEAL_STEP_KINDS)}",
                              value=repr(kind))
        start, end = codec.to_iso(started_at, field="started_at"), codec.to_iso(ended_at, field="ended_at")
        duration = max(0.0, (codec.iso_to_epoch(end) or 0.0) - (codec.iso_to_epoch(start) or 0.0))
        row = (session_id, codec.require_int(index, "index"), codec.require_int(attempt, "attempt"), kind,
               None if ok is None else int(bool(ok)), start, end, duration,
               _version_id(strategy_version_id, "strategy_version_id"), codec.dumps(data))

        def insert(conn: sqlite3.Connection) -> int:
            if conn.execute("SELECT 1 FROM heal_sessions WHERE id = ?", (session_id,)).fetchone() is None:
                raise _not_found(session_id)
            cur = conn.execute('INSERT INTO heal_steps (session_id, "index", attempt, kind, ok, started_at, '
                               "ended_at, duration_s, strategy_version_id, data) VALUES "
                               "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            conn.execute("UPDATE heal_sessions SET updated_at = ?, attempts = MAX(attempts, ?) WHERE id = ?",
                         (codec.now_iso(), row[2], session_id))
            return int(cur.lastrowid)  # type: ignore[arg-type]

        return self._write("add heal step", insert)

    def finish_heal_session(self, session_id: str, status: str, *, healed: bool, attempts: int,
                            final_version_id: int | None = None, diagnosis: Any = None,
                            error: Any = None) -> None:
        """Record the outcome: status (a final one), healed, attempts, final version, diagnosis, error."""
        codec.require_text(session_id, "session id", max_len=64)
        if status not in HEAL_FINAL_STATUSES:
            raise ConfigError(f"invalid final heal status {status!r}",
                              hint=f"one of {', '.join(HEAL_FINAL_STATUSES)}", value=repr(status))
        values = (status, int(bool(healed)), codec.require_int(attempts, "attempts"),
                  _version_id(final_version_id, "final_version_id"), codec.dumps(diagnosis),
                  codec.dumps(codec.error_record(error)))

        def update(conn: sqlite3.Connection) -> None:
            now = codec.now_iso()
            cur = conn.execute("UPDATE heal_sessions SET status = ?, healed = ?, attempts = ?, "
                               "final_version_id = ?, diagnosis = ?, error = ?, updated_at = ?, "
                               "finished_at = ? WHERE id = ?", (*values, now, now, session_id))
            if cur.rowcount == 0:
                raise _not_found(session_id)

        self._write("finish heal session", update)

    def get_heal_session(self, session_id: str, *, steps: bool = True) -> dict[str, Any] | None:
        """One session (JSON decoded) with its ``steps`` in order, or None."""
        codec.require_text(session_id, "session id", max_len=64)

        def collect(conn: sqlite3.Connection) -> dict[str, Any] | None:
            record = _session_dict(conn.execute(f"SELECT {_SESSION_COLUMNS} FROM heal_sessions WHERE id = ?",
                                                (session_id,)).fetchone())
            if record is not None and steps:
                rows = conn.execute(f'SELECT {_STEP_COLUMNS} FROM heal_steps WHERE session_id = ? '
                                    'ORDER BY "index"', (session_id,))
                record["steps"] = [_step_dict(r) for r in rows]
            return record

        return self._snapshot("get heal session", collect)

    def list_heal_sessions(self, limit: int = 50, *, strategy: str | None = None,
                           status: str | None = None) -> list[dict[str, Any]]:
        """The newest sessions first (without steps), optionally by strategy and status."""
        limit = codec.require_int(limit, "limit")  # type: ignore[assignment]
        where, args = [], []
        if strategy is not None:
            where.append("strategy = ?")
            args.append(codec.require_text(strategy, "strategy name"))
        if status is not None:
            if status not in HEAL_STATUSES:
                raise ConfigError(f"unknown heal status {status!r}",
                                  hint=f"one of {', '.join(HEAL_STATUSES)}", value=repr(status))
            where.append("status = ?")
            args.append(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = (f"SELECT {_SESSION_COLUMNS} FROM heal_sessions {clause} "
               "ORDER BY created_at DESC, rowid DESC LIMIT ?")
        return self._read("list heal sessions",
                          lambda c: [_session_dict(r) for r in c.execute(sql, (*args, limit))])
