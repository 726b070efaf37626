"""Long-running jobs (optimizations, sanity checks) and their trials, resumable after a crash.

A job row is the shared state between the process running it and anyone watching or cancelling it:
progress (done/total), best result, heartbeat (epoch seconds, refreshed by every `update_job` and every
few seconds by `qlm_kernel.store.heartbeat` while the job runs), its owner (worker pid and host name),
and a ``cancel_requested`` flag another process can set with `request_cancel`.

Owned and reaped: a pending or running job whose owner is gone is *abandoned* — a terminal status that
can be resumed like ``failed`` and ``cancelled``. `reap_jobs` marks them: an owner on this host whose pid
no longer runs (psutil; a zombie counts as gone), or any owner whose heartbeat is older than
`stale_after_seconds()` (``QLM_JOB_STALE_SECONDS``, default `STALE_AFTER_S` = 60 s). An owner on another
host (a store on a shared disk) is only judged by its heartbeat, never by a local pid. A writable `Store`
reaps once when it opens.
"""

from __future__ import annotations

import math
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import psutil

from qlm_kernel.errors import ConfigError, QLMSystemError
from qlm_kernel.store import codec
from qlm_kernel.store.base import StoreBase

JOB_STATUSES = ("pending", "running", "done", "failed", "cancelled", "abandoned")
ACTIVE_STATUSES = ("pending", "running")
FINAL_STATUSES = ("done", "failed", "cancelled", "abandoned")
RESUMABLE_STATUSES = ("failed", "cancelled", "abandoned")
REAP_STATUSES = ("abandoned", "cancelled")
UPDATABLE = ("status", "done", "total", "best", "error", "heartbeat", "pid", "host")
STALE_AFTER_S = 60.0
"""Default age (seconds) after which a pending/running job's heartbeat means its owner is gone.

Jobs beat every `qlm_kernel.store.heartbeat.interval_seconds()` (5 s) even without progress, so 60 s is
twelve missed beats. Override with ``QLM_JOB_STALE_SECONDS`` (keep it several times the interval)."""
STALE_ENV = "QLM_JOB_STALE_SECONDS"
HOST = socket.gethostname()
"""This machine's name: the host part of a job's owner."""
_JOB_JSON = ("config", "best", "error")
_JOB_COLUMNS = ("id, kind, config, status, done, total, best, error, heartbeat, pid, host, cancel_requested, "
                "created_at, updated_at, finished_at")
_TRIAL_JSON = ("params", "metrics")
_ACTIVE_SQL = "status IN ('pending', 'running')"


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


JOB_LIST_FIXES = {  # where each front end lists job ids (`QLMError.fixes`)
    "python": "list them with qlm.optimize.list()",
    "cli": "list them with `qlm jobs list`",
    "mcp": "list them with the list_jobs tool",
}


def _not_found(job_id: str) -> ConfigError:
    return ConfigError(f"no job with id {job_id!r}", hint="a job id comes from an optimization",
                       code="NOT_FOUND", fixes=JOB_LIST_FIXES, job_id=job_id)


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


def stale_after_seconds(value: float | None = None) -> float:
    """The heartbeat age that makes a job abandoned: ``value``, else ``$QLM_JOB_STALE_SECONDS``, else 60."""
    if value is None:
        text = os.environ.get(STALE_ENV, "").strip()
        if not text:
            return STALE_AFTER_S
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        source = f"${STALE_ENV}"
    else:
        source = "stale_after"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise ConfigError(f"{source} must be a positive number of seconds, not {value!r}",
                          hint=f"e.g. {STALE_ENV}=60 (several times the heartbeat interval)",
                          value=repr(value))
    return float(value)


def owner_alive(pid: int | None, host: str | None) -> bool | None:
    """Whether a job's owner process still runs: True/False on this host, None when it cannot be told here
    (no pid recorded, or another host). A row without a host predates owner hosts: it is this host's."""
    if pid is None or (host is not None and host != HOST):
        return None
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # exists, owned by someone else
        return True


def orphan_reason(job: Mapping[str, Any], now: float, stale_after: float) -> str | None:
    """Why a pending/running job has no live owner (dead pid here, or a heartbeat older than
    ``stale_after``), or None when it looks alive (or is not active)."""
    if job.get("status") not in ACTIVE_STATUSES:
        return None
    pid, host = job.get("pid"), job.get("host")
    where = host or HOST
    if owner_alive(pid, host) is False:
        return f"its owner process {pid} on {where} is gone"
    beat = job.get("heartbeat")
    if isinstance(beat, (int, float)) and now - beat > stale_after:
        return (f"its owner (pid {pid} on {where}) sent no heartbeat for {now - beat:.0f} s "
                f"(limit {stale_after:g} s)")
    return None


def reaped_error(job_id: str, status: str, reason: str) -> dict[str, Any]:
    """The error record a reaped job keeps: why it stopped and how to finish it."""
    code = "JOB_ABANDONED" if status == "abandoned" else "JOB_REAPED"
    return QLMSystemError(f"job {job_id} was marked {status}: {reason}", code=code,
                          hint="resume it: trials already stored are kept",
                          fixes={"python": f"qlm.optimize.resume({job_id!r})",
                                 "cli": f"the same `qlm optimize` command with --resume {job_id}"},
                          job_id=job_id).to_dict()


def reaped_payload(reaped: Mapping[str, Any]) -> dict[str, Any]:
    """The bus/event-log payload announcing one reaped job (``job.failed`` or ``job.cancelled``)."""
    return {"job_id": reaped["id"], "status": reaped["status"], "reason": reaped["reason"],
            "done": reaped["done"], "total": reaped["total"], "pid": reaped["pid"], "host": reaped["host"],
            "error": reaped["error"]}


def _require_job(conn: sqlite3.Connection, job_id: str) -> None:
    if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
        raise _not_found(job_id)


class JobsMixin(StoreBase):
    """Jobs: create, update, finish, get, list, cancel; trials: add, list, finished keys."""

    def create_job(self, kind: str, config: Any = None, total: int | None = None, *,
                   job_id: str | None = None, pid: int | None = None, host: str | None = None) -> str:
        """A new 'pending' job owned by ``pid`` on ``host`` (default: this process, this host); returns its
        id (a fresh short uuid unless `job_id` is given)."""
        codec.require_text(kind, "job kind", max_len=64)
        total = codec.require_int(total, "total", allow_none=True)
        jid = codec.require_text(job_id, "job id", max_len=64) if job_id is not None else new_job_id()
        pid = codec.require_int(os.getpid() if pid is None else pid, "pid")
        host = codec.require_text(HOST if host is None else host, "host", max_len=256)
        config_text = codec.dumps(config)

        def insert(conn: sqlite3.Connection) -> str:
            if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (jid,)).fetchone() is not None:
                raise ConfigError(f"a job with id {jid!r} already exists", hint="omit job_id for a fresh one",
                                  code="JOB_EXISTS", job_id=jid)
            now = codec.now_iso()
            conn.execute("INSERT INTO jobs (id, kind, config, status, done, total, heartbeat, pid, host, "
                         "created_at, updated_at) VALUES (?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?, ?)",
                         (jid, kind, config_text, total, time.time(), pid, host, now, now))
            return jid

        return self._write("create job", insert)

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Set progress and state: status, done, total, best, error, heartbeat (epoch; default now), pid,
        host (default this host when ``pid`` is set).

        Every update also refreshes ``heartbeat`` and ``updated_at``: a worker that reports progress is
        alive. A job moved back to pending/running is no longer finished (``finished_at`` cleared).
        """
        codec.require_text(job_id, "job id", max_len=64)
        unknown = sorted(set(fields) - set(UPDATABLE))
        if unknown:
            raise ConfigError(f"unknown job field(s): {', '.join(unknown)}", hint=f"update_job accepts "
                              f"{', '.join(UPDATABLE)}", job_id=job_id, fields=unknown)
        values: dict[str, Any] = {}
        if "status" in fields:
            values["status"] = _status(fields["status"], JOB_STATUSES, job_id)
            values["finished_at"] = codec.now_iso() if values["status"] in FINAL_STATUSES else None
        for name in ("done", "total", "pid"):
            if name in fields:
                values[name] = codec.require_int(fields[name], name, allow_none=name == "total")
        if "host" in fields or "pid" in fields:
            values["host"] = codec.require_text(fields.get("host") or HOST, "host", max_len=256)
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

    def active_jobs(self) -> list[dict[str, Any]]:
        """Every pending or running job (oldest first): what a reaper looks at."""
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {_ACTIVE_SQL} ORDER BY created_at, rowid"
        return self._read("active jobs", lambda c: [_job_dict(r) for r in c.execute(sql)])

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

    # -- owners -------------------------------------------------------------------------------------

    def beat_jobs(self, job_ids: Iterable[str], pid: int | None = None) -> list[str]:
        """Refresh the heartbeat of the given pending/running jobs owned by ``pid`` (default this
        process); returns the ids still beating (a finished, reaped or re-owned job drops out)."""
        ids = [codec.require_text(j, "job id", max_len=64) for j in job_ids]
        owner = os.getpid() if pid is None else codec.require_int(pid, "pid")
        if not ids:
            return []

        def beat(conn: sqlite3.Connection) -> list[str]:
            now = time.time()
            return [jid for jid in ids if conn.execute(
                f"UPDATE jobs SET heartbeat = ? WHERE id = ? AND pid = ? AND {_ACTIVE_SQL}",
                (now, jid, owner)).rowcount]

        return self._write("beat jobs", beat)

    def reap_jobs(self, owner_pids: Iterable[int] | None = None, *, status: str = "abandoned",
                  stale_after: float | None = None, log_events: bool = False) -> list[dict[str, Any]]:
        """Mark pending/running jobs whose owner is gone with ``status`` (abandoned or cancelled).

        With ``owner_pids``: the jobs owned by those pids on this host, alive or not (a pool that stopped
        its workers says so). Without: every job whose owner is dead here or whose heartbeat is older
        than ``stale_after`` (see `orphan_reason`). Each keeps an error record saying why. With
        ``log_events`` a ``job.failed`` / ``job.cancelled`` row goes to the event log in the same
        transaction (for readers in other processes). Returns ``{"id", "status", "previous",
        "pid", "host", "reason", "done", "total"}`` per reaped job.
        """
        target = _status(status, REAP_STATUSES, "*")
        pids = None if owner_pids is None else {codec.require_int(p, "owner pid") for p in owner_pids}
        limit = stale_after_seconds(stale_after)
        if pids is not None and not pids:
            return []
        select = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {_ACTIVE_SQL}"

        def pick(conn: sqlite3.Connection) -> list[tuple[dict[str, Any], str]]:
            now, chosen = time.time(), []
            for row in conn.execute(select):
                job = _job_dict(row)
                assert job is not None
                if pids is not None:
                    mine = job["pid"] in pids and (job["host"] is None or job["host"] == HOST)
                    reason = f"its owner process {job['pid']} on {HOST} was stopped" if mine else None
                else:
                    reason = orphan_reason(job, now, limit)
                if reason is not None:
                    chosen.append((job, reason))
            return chosen

        if not self._read("find orphaned jobs", pick):  # the usual case: no write lock taken
            return []

        def mark(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            reaped, now_iso = [], codec.now_iso()
            for job, reason in pick(conn):  # again under the write lock: nobody changed them meanwhile
                error = reaped_error(job["id"], target, reason)
                conn.execute("UPDATE jobs SET status = ?, error = ?, updated_at = ?, finished_at = ? "
                             "WHERE id = ?", (target, codec.dumps(error), now_iso, now_iso, job["id"]))
                reaped.append({"id": job["id"], "status": target, "previous": job["status"],
                               "pid": job["pid"], "host": job["host"], "reason": reason,
                               "done": job["done"], "total": job["total"], "error": error})
            if log_events and reaped:
                topic = "job.cancelled" if target == "cancelled" else "job.failed"
                conn.executemany(
                    "INSERT INTO events (topic, payload, source, created_at) VALUES (?, ?, ?, ?)",
                    [(topic, codec.dumps(reaped_payload(r)), f"store:{os.getpid()}", now_iso)
                     for r in reaped])
            return reaped

        return self._write("reap jobs", mark)

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
