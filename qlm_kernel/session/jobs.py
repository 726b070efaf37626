"""Jobs (optimizations) as every front end shows them: one view, one list, one cancel.

`job_view` is the one shape the CLI (``qlm jobs``), the MCP tools (``get_job``, ``list_jobs``), the
widgets and the JupyterLab sidebar print; `cancel_job` the one cancel with one reply; `reap_jobs` the
one way to mark jobs whose owner is gone. A job is found in the workspace store or, unrecorded
(``record=False``), among the jobs running in this process. Reads never create the database: an
unknown id in an empty workspace is NOT_FOUND, nothing more.

Abandoned jobs: a pending/running job whose owner process died (or stopped beating for
``STALE_SECONDS``) is marked ``abandoned`` — by the next writable store that opens, or by `list_jobs` /
`get_job` when they meet one (the only time a read writes: one short transaction on an existing
database, and never when it is read-only). Abandoned jobs resume like failed and cancelled ones.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from qlm_kernel.errors import ConfigError, QLMError
from qlm_kernel.events import publish
from qlm_kernel.home import PathLike
from qlm_kernel.jsonsafe import json_safe
from qlm_kernel.session.limits import listing
from qlm_kernel.store import (
    ACTIVE_STATUSES,
    JOB_STATUSES,
    RESUMABLE_STATUSES,
    STALE_AFTER_S,
    orphan_reason,
    reaped_payload,
    stale_after_seconds,
)
from qlm_kernel.store.jobs import JOB_LIST_FIXES
from qlm_kernel.workspace import stores

STALE_SECONDS = STALE_AFTER_S
"""A pending/running job whose heartbeat is older than this (``$QLM_JOB_STALE_SECONDS``, default 60 s)
is flagged ``stale`` and reaped as ``abandoned``; live jobs beat every few seconds."""
MAX_TRIALS_SHOWN = 100
_log = logging.getLogger(__name__)
_expected_ends: dict[int, str] = {}
_expected_lock = threading.Lock()


def expect_end(pid: int, status: str) -> None:
    """Say, before killing process ``pid``, how its jobs end (``cancelled`` for a cancelled request):
    a reader that finds them orphaned between the kill and `reap_jobs` closes them so, not abandoned."""
    with _expected_lock:
        _expected_ends[int(pid)] = status


def _expected() -> dict[int, str]:
    """The stated endings. Read, not taken: until the pool's own reap has written them, any reaper that
    finds those jobs orphaned must close them the same way."""
    with _expected_lock:
        return dict(_expected_ends)


def _forget_expected(pids: Iterable[int]) -> None:
    with _expected_lock:
        for pid in pids:
            _expected_ends.pop(pid, None)


def not_found(what: str, ident: Any, hint: str, *, fixes: dict[str, str] | None = None,
              **context: Any) -> ConfigError:
    """The one "not found" error of every front end (code NOT_FOUND), with each front end's ``fixes``."""
    return ConfigError(
        f"no {what} {ident!r}" if isinstance(ident, str) else f"no {what} {ident}",
        hint=hint,
        code="NOT_FOUND",
        fixes=fixes,
        **context,
    )


def _jobs_here() -> ModuleType | None:
    """The registry of the optimization jobs running in this process (`qlm_kernel.optimization.job`), or
    None when nothing imported it: then no job runs here, and a read (``qlm jobs list|show``) need not
    import the optimizer (pandas, the engine) just to learn so."""
    return sys.modules.get("qlm_kernel.optimization.job")


def running_in_process(job_id: str) -> dict[str, Any] | None:
    """The live progress payload of a job running in this process, else None."""
    here = _jobs_here()
    return None if here is None else here.running_in_process(job_id)


def cancel_in_process(job_id: str) -> bool:
    """Flag a job running in this process to stop after its current batch; False when none runs here."""
    here = _jobs_here()
    return False if here is None else here.cancel_in_process(job_id)


def unknown_job(job_id: str) -> ConfigError:
    """NOT_FOUND for a job id."""
    return not_found("job with id", job_id, "a job id comes from an optimization", fixes=JOB_LIST_FIXES,
                     job_id=job_id)


def job_view(job: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """A stored job as every front end shows it: progress, strategy, data, best, heartbeat, staleness."""
    now = time.time() if now is None else now
    config = job.get("config") if isinstance(job.get("config"), dict) else {}
    done, total, status = job.get("done") or 0, job.get("total"), job.get("status")
    fraction = 1.0 if status == "done" else (min(1.0, done / total) if total else 0.0)
    beat = job.get("heartbeat")
    age = None if not isinstance(beat, (int, float)) else max(0.0, now - beat)
    limit = stale_after_seconds()
    best = job.get("best") if isinstance(job.get("best"), dict) else None
    return json_safe(
        {
            "id": job["id"],
            "kind": job.get("kind"),
            "status": status,
            "done": done,
            "total": total,
            "progress": fraction,
            "strategy": config.get("strategy") or config.get("class_name"),
            "method": config.get("method"),
            "objective": config.get("objective"),
            "maximize": config.get("maximize", True),
            "space": config.get("space"),
            "dataset": config.get("dataset"),
            "sample": config.get("sample"),
            "data_file": config.get("data_file"),
            "data_fingerprint": config.get("data_fingerprint"),
            "settings": config.get("settings"),
            "best": None if best is None else {"params": best.get("params"), "value": best.get("value")},
            "error": job.get("error"),
            "cancel_requested": bool(job.get("cancel_requested", False)),
            "pid": job.get("pid"),
            "host": job.get("host"),
            "heartbeat": beat,
            "heartbeat_age_s": age,
            "stale": status in ACTIVE_STATUSES and age is not None and age > limit,
            "resumable": status in RESUMABLE_STATUSES,
            "created_at": job.get("created_at"),
            "updated_at": job.get("updated_at"),
            "finished_at": job.get("finished_at"),
            "recorded": True,
        }
    )


def _live_view(payload: dict[str, Any]) -> dict[str, Any]:
    """An unrecorded job running in this process (its progress payload), in the stored jobs' shape."""
    best = payload.get("best_params")
    job = {
        "id": payload["job_id"],
        "kind": "optimize",
        "status": "running",
        "done": payload.get("done"),
        "total": payload.get("total"),
        "best": None if best is None else {"params": best, "value": payload.get("best_value")},
        "pid": os.getpid(),
        "heartbeat": time.time(),
    }
    return {**job_view(job), "recorded": False}


def get_job(job_id: str, trials: int = 5, *, home: PathLike | None = None) -> dict[str, Any]:
    """One job's view plus its first and best ``trials`` trials (0 for none; at most 100)."""
    job_id = str(job_id)
    n = max(0, min(int(trials), MAX_TRIALS_SHOWN))
    job, rows = _stored_job(job_id, n, home)
    if job is not None and _reap_if_orphaned([job], home):
        job, rows = _stored_job(job_id, n, home)
    if job is None:
        live = running_in_process(job_id)
        if live is None:
            raise unknown_job(job_id)
        return {
            **_live_view(live),
            "trials": {"count": None, "order": "maximize", "first": [], "best": []},
        }
    view = job_view(job)
    order = "maximize" if view["maximize"] is not False else "minimize"
    return {
        **view,
        "trials": json_safe(
            {
                "count": len(rows) if n > 0 else None,
                "order": order,
                "first": rows[:n],
                "best": best_trials(rows, n, minimize=order == "minimize"),
            }
        ),
    }


def _stored_job(job_id: str, n: int, home: PathLike | None) -> tuple[dict[str, Any] | None, list[dict]]:
    """The stored job (None if unknown) and, when ``n`` > 0, all its trials; read-only."""
    with stores.reading(home) as store:
        job = None if store is None else store.get_job(job_id)
        rows = store.list_trials(job_id) if job is not None and n > 0 else []  # type: ignore[union-attr]
    return job, rows


def best_trials(trials: list[dict[str, Any]], n: int, *, minimize: bool) -> list[dict[str, Any]]:
    """The ``n`` best trials by objective (trials without an objective never rank)."""
    scored = [t for t in trials if isinstance(t.get("objective"), (int, float))]
    scored.sort(key=lambda t: t["objective"], reverse=not minimize)
    return scored[:n]


def list_jobs(
    status: str | None = None, limit: int = 20, *, home: PathLike | None = None
) -> list[dict[str, Any]]:
    """The newest jobs first (``status`` filters), each as `job_view`."""
    if status is not None and status not in JOB_STATUSES:
        raise ConfigError(
            f"unknown job status {status!r}",
            code="BAD_ARGUMENT",
            hint=f"one of {', '.join(JOB_STATUSES)}",
            value=status,
        )
    with stores.reading(home) as store:
        active = [] if store is None else store.active_jobs()  # orphans may be outside the page
        jobs = [] if store is None else store.list_jobs(status=status, limit=listing(limit))
    if _reap_if_orphaned(active, home):
        with stores.reading(home) as store:
            jobs = [] if store is None else store.list_jobs(status=status, limit=listing(limit))
    now = time.time()
    return [job_view(job, now) for job in jobs]


def reap_jobs(
    owner_pids: Iterable[int] | None = None,
    *,
    status: str = "abandoned",
    stale_after: float | None = None,
    home: PathLike | None = None,
) -> list[str]:
    """Mark pending/running jobs whose owner is gone with ``status`` ("abandoned" or "cancelled");
    returns their ids. Safe from any thread.

    ``owner_pids``: the jobs owned by these pids on this host (e.g. worker processes a pool stopped),
    whether or not they still run. None: every job whose owner process is dead on this host or whose
    heartbeat is older than ``stale_after`` seconds (default ``$QLM_JOB_STALE_SECONDS`` or 60). Each
    job keeps an error saying why (code JOB_ABANDONED, or JOB_REAPED for cancelled) and each is
    announced on the bus like any job ending: ``job.failed`` (payload ``status: "abandoned"``) or
    ``job.cancelled``, with ``job_id``, ``reason``, ``done``, ``total``. No database: nothing to reap.
    """
    if status not in ("abandoned", "cancelled"):
        raise ConfigError(
            f"cannot reap jobs as {status!r}",
            code="BAD_ARGUMENT",
            hint="reap as 'abandoned' (resumable; the default) or 'cancelled'",
            value=status,
        )
    pids = None if owner_pids is None else [int(pid) for pid in owner_pids]
    with stores.writing(home) as store:
        reaped = []
        if store is not None:
            if pids is None:  # processes killed on purpose: their jobs close as the killer said
                for pid, ending in _expected().items():
                    reaped += store.reap_jobs([pid], status=ending)
            reaped += store.reap_jobs(pids, status=status, stale_after=stale_after)
    if pids is not None:  # the pool's own reap of these processes is written: nothing left to expect
        _forget_expected(pids)
    for job in reaped:
        publish("job.cancelled" if job["status"] == "cancelled" else "job.failed", reaped_payload(job))
    return [job["id"] for job in reaped]


def _reap_if_orphaned(jobs: list[dict[str, Any]], home: PathLike | None) -> bool:
    """Reap when ``jobs`` (just read) hold a pending/running job without a live owner; True when the
    caller should read again (the reap ran; opening the store may have done it already). A store that
    cannot be written (read-only file, busy) leaves them as they are (shown ``stale``)."""
    now, limit = time.time(), stale_after_seconds()
    if not any(orphan_reason(job, now, limit) for job in jobs):
        return False
    try:
        reap_jobs(home=home)
    except QLMError as err:
        _log.warning("could not mark abandoned jobs: %s", err)
        return False
    return True


def cancel_job(job_id: str, *, home: PathLike | None = None) -> dict[str, Any]:
    """Ask a pending or running job to stop after its current batch, wherever it runs.

    Sets the in-process flag (a job running here, recorded or not) and the store's ``cancel_requested``
    column (a job in another process polls it). Reply: ``{"job_id", "status", "cancel_requested":
    True}``, ``status`` being the job's state when the request arrived (it may finish cancelled a moment
    later). An unknown id is NOT_FOUND, a finished job JOB_FINISHED; neither creates a database.
    """
    job_id = str(job_id)
    with stores.writing(home) as store:
        job = None if store is None else store.get_job(job_id)  # the state the request found
        if job is None:
            if cancel_in_process(job_id):
                return {"job_id": job_id, "status": "running", "cancel_requested": True}
            raise unknown_job(job_id)
        # the store's flag first: a job the in-process flag stops at once is then recorded as asked to stop
        # (the other order let a fast job finish "cancelled" with cancel_requested still false)
        flagged = store.request_cancel(job_id)
        here = cancel_in_process(job_id)
        status = job["status"] if flagged or here else (store.get_job(job_id) or job)["status"]
    if not flagged and not here:
        raise ConfigError(
            f"job {job_id!r} already finished (status {status}); nothing to cancel",
            hint="only pending or running jobs can be cancelled",
            code="JOB_FINISHED",
            fixes=JOB_LIST_FIXES,
            job_id=job_id,
            status=status,
        )
    return {"job_id": job_id, "status": status, "cancel_requested": True}
