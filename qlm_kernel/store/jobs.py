"""Long-running jobs (optimizations, sanity checks) and their trials, resumable after a crash.

A job row is the shared state between the process running it and anyone watching or cancelling it:
progress (done/total), best result, heartbeat (epoch seconds, refreshed by every `update_job`), the
worker pid, and a ``cancel_requested`` flag another process can set with `request_cancel`.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from qlm_kernel.errors import ConfigError
from qlm_kernel.store import codec
from qlm_kernel.store.base import StoreBase

JOB_STATUSES = ("pending", "running", "done", "failed", "cancelled")
FINAL_STATUSES = ("done", "failed", "cancelled")
UPDATABLE = ("status", "done", "total", "best", "error", "heartbeat", "pid")
_JOB_JSON = ("config", "best", "error")
_JOB_COLUMNS = ("id, kind, config, status, done, total, best, error, heartbeat, pid, cancel_requested, "
                "created_at, updated_at, finished_at")
_TRIAL_JSON = ("params", "metrics")


def new_job_id() -> str:
    """A short random id (12 hex digits)."""
    return uuid.uuid4().hex[:12]


def _job_dict(row: sqlite3.Row | None) -> dict[str, Any] | None:
    job = codec.row_dict(row, _JOB_JSON)
    if job is not None:
        job["cancel_requested"] = bool(job["cancel_requested"])
    return job


def _status(value: Any, allowed: tuple[str, ...], job_id: str) -> str:
    if value not in allowed:
        raise ConfigError(f"invalid job status {value!r}", hint=f"use one of {', '.join(allowed)}",
                          job_id=job_id, value=repr(value))
    return value


def _not_found(job_id: str) -> ConfigError:
    return ConfigError(f"no job with id {job_id!r}", hint="list jobs with list_jobs() or `qlm jobs list`",
                       code="NOT_FOUND", job_id=job_id)


def _objective(value: Any, job_id: str) -> float | None:
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError("a trial objective must be a number or None", hint="pass the metric value",
                          job_id=job_id, value=repr(value)[:200])
    return None if math.isnan(value) else float(value)


def _trial_row(job_id: str, row: Mapping[str, Any], now: str) -> tuple[Any, ...]:
    if not isinstance(row, Mapping) or not isinstance(row.get("params"), Mapping):
        raise ConfigError("each trial is a dict with a 'params' dict", hint="e.g. {'params': {'fast': 10}, "
                          "'metrics': {...}, 'objective': 1.2}", job_id=job_id, value=repr(row)[:200])
    key = row.get("trial_key") or codec.canonical_key(row["params"])
    status = codec.require_text(row.get("status", "ok"), "trial status", max_len=32)
    return (job_id, key, codec.dumps(dict(row["params"])), codec.dumps(row.get("metrics")),
            _objective(row.get("objective"), job_id), status, now)


def _require_job(conn: sqlite3.Connection, job_id: str) -> None:
    if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
        raise _not_found(job_id)


class JobsMixin(StoreBase):
    """Jobs: create, update, finish, get, list, cancel; trials: add, list, finished keys."""

    def create_job(self, kind: str, config: Any = None, total: int | None = None, *,
                   job_id: str | None = None, pid: int | None = None) -> str:
        """A new 'pending' job; returns its id (a fresh short uuid unless `job_id` is given)."""
        codec.require_text(kind, "job kind", max_len=64)
        total = codec.require_int(total, "total", allow_none=True)
        jid = codec.require_text(job_id, "job id", max_len=64) if job_id is not None else new_job_id()
        pid = codec.require_int(os.getpid() if pid is None else pid, "pid")
        config_text = codec.dumps(config)

        def insert(conn: sqlite3.Connection) -> str:
            if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (jid,)).fetchone() is not None:
                raise ConfigError(f"a job with id {jid!r} already exists", hint="omit job_id for a fresh one",
                                  code="JOB_EXISTS", job_id=jid)
            now = codec.now_iso()
            conn.execute("INSERT INTO jobs (id, kind, config, status, done, total, heartbeat, pid, "
                         "created_at, updated_at) VALUES (?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?)",
                         (jid, kind, config_text, total, time.time(), pid, now, now))
            return jid

        return self._write("create job", insert)

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Set progress and state: status, done, total, best, error, heartbeat (epoch; default now), pid.

        Every update also refreshes ``heartbeat`` and ``updated_at``: a worker that reports progress is
        alive.
        """
        codec.require_text(job_id, "job id", max_len=64)
        unknown = sorted(set(fields) - set(UPDATABLE))
        if unknown:
            raise ConfigError(f"unknown job field(s): {', '.join(unknown)}", hint=f"update_job accepts "
                              f"{', '.join(UPDATABLE)}", job_id=job_id, fields=unknown)
        values: dict[str, Any] = {}
        if "status" in fields:
            values["status"] = _status(fields["status"], JOB_STATUSES, job_id)
            if values["status"] in FINAL_STATUSES:
                values["finished_at"] = codec.now_iso()
        for name in ("done", "total", "pid"):
            if name in fields:
                values[name] = codec.require_int(fields[name], name, allow_none=name == "total")
        if "best" in fields:
            values["best"] = codec.dumps(fields["best"])
        if "error" in fields:
            values["error"] = codec.dumps(codec.error_record(fields["error"]))
        beat = fields.get("heartbeat")
        if beat is not None and (isinstance(beat, bool) or not isinstance(beat, (int, float))):
            raise ConfigError("heartbeat is epoch seconds (time.time())", hint="omit it to use now",
                              job_id=job_id, value=repr(beat))
        values["heartbeat"] = float(beat) if beat is not None else time.time()
        values["updated_at"] = codec.now_iso()
        sets = ", ".join(f"{name} = ?" for name in values)

        def update(conn: sqlite3.Connection) -> None:
            if conn.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*values.values(), job_id)).rowcount == 0:
                raise _not_found(job_id)

        self._write("update job", update)

    def finish_job(self, job_id: str, status: str, best: Any = None, error: Any = None) -> None:
        """Mark a job done / failed / cancelled, with its best result and error (kept if None)."""
        _status(status, FINAL_STATUSES, job_id)
        fields: dict[str, Any] = {"status": status}
        if best is not None:
            fields["best"] = best
        if error is not None:
            fields["error"] = error
        self.update_job(job_id, **fields)

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """One job (JSON columns decoded, cancel_requested as bool), or None."""
        codec.require_text(job_id, "job id", max_len=64)
        return self._read("get job", lambda c: _job_dict(
            c.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()))

    def list_jobs(self, status: str | None = None, limit: int = 50, *, kind: str | None = None) -> list[dict]:
        """The newest jobs first, optionally filtered by status and kind."""
        limit = codec.require_int(limit, "limit")  # type: ignore[assignment]
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(_status(status, JOB_STATUSES, "*"))
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs {clause} ORDER BY created_at DESC, rowid DESC LIMIT ?"
        return self._read("list jobs", lambda c: [_job_dict(r) for r in c.execute(sql, (*args, limit))])

    def request_cancel(self, job_id: str) -> bool:
        """Ask a job (possibly in another process) to stop; False if it had already finished."""
        codec.require_text(job_id, "job id", max_len=64)

        def flag(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise _not_found(job_id)
            if row["status"] in FINAL_STATUSES:
                return False
            conn.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                         (codec.now_iso(), job_id))
            return True

        return self._write("request cancel", flag)

    def cancel_requested(self, job_id: str) -> bool:
        """True once someone called `request_cancel` for this job (workers poll this between batches)."""
        codec.require_text(job_id, "job id", max_len=64)
        row = self._read("cancel requested", lambda c: c.execute(
            "SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone())
        if row is None:
            raise _not_found(job_id)
        return bool(row[0])

    # -- trials ---------------------------------------------------------------------------------------

    def add_trials(self, job_id: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert a batch of trials in one transaction; a trial already stored (same params) is skipped.

        Each row: params (dict, required), metrics (dict), objective (float; NaN stored as NULL), status
        (default 'ok'), trial_key (default: canonical JSON of params). Returns how many were new.
        """
        codec.require_text(job_id, "job id", max_len=64)
        now = codec.now_iso()
        batch = [_trial_row(job_id, row, now) for row in rows]
        if not batch:
            return 0

        def insert(conn: sqlite3.Connection) -> int:
            _require_job(conn, job_id)
            before = conn.total_changes
            conn.executemany("INSERT OR IGNORE INTO trials (job_id, trial_key, params, metrics, objective, "
                             "status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
            return conn.total_changes - before

        return self._write("add trials", insert)

    def list_trials(self, job_id: str, *, status: str | None = None,
                    limit: int | None = None) -> list[dict[str, Any]]:
        """A job's trials in insertion order (params and metrics decoded)."""
        codec.require_text(job_id, "job id", max_len=64)
        filters = "job_id = ?" + (" AND status = ?" if status is not None else "")
        sql = ("SELECT id, job_id, trial_key, params, metrics, objective, status, created_at FROM trials "
               f"WHERE {filters} ORDER BY id LIMIT ?")
        args: tuple[Any, ...] = (job_id, *(() if status is None else (status,)),
                                 -1 if limit is None else codec.require_int(limit, "limit"))
        return self._read("list trials", lambda c: codec.rows_dicts(c.execute(sql, args), _TRIAL_JSON))

    def finished_trial_keys(self, job_id: str) -> set[str]:
        """The trial keys already stored for a job: what a resumed job can skip."""
        codec.require_text(job_id, "job id", max_len=64)
        rows = self._read("finished trial keys", lambda c: c.execute(
            "SELECT trial_key FROM trials WHERE job_id = ?", (job_id,)).fetchall())
        return {r[0] for r in rows}
