"""Jobs (optimizations) as every front end shows them: one view, one list, one cancel.

`job_view` is the one shape the CLI (``qlm jobs``), the MCP tools (``get_job``, ``list_jobs``), the
widgets and the JupyterLab sidebar print; `cancel_job` the one cancel with one reply. A job is found
in the workspace store or, unrecorded (``record=False``), among the jobs running in this process.
Reads never create the database: an unknown id in an empty workspace is NOT_FOUND, nothing more.
"""

from __future__ import annotations

import os
import time
from typing import Any

from qlm_kernel.errors import ConfigError
from qlm_kernel.home import PathLike
from qlm_kernel.jsonsafe import json_safe
from qlm_kernel.optimization import cancel_in_process, running_in_process
from qlm_kernel.session.limits import listing
from qlm_kernel.store import JOB_STATUSES
from qlm_kernel.workspace import stores

STALE_SECONDS = 60.0
"""A running job whose heartbeat is older than this is flagged ``stale`` (its worker likely died)."""
MAX_TRIALS_SHOWN = 100


def not_found(what: str, ident: Any, hint: str, **context: Any) -> ConfigError:
    """The one "not found" error of every front end (code NOT_FOUND)."""
    return ConfigError(
        f"no {what} {ident!r}" if isinstance(ident, str) else f"no {what} {ident}",
        hint=hint,
        code="NOT_FOUND",
        **context,
    )


def unknown_job(job_id: str) -> ConfigError:
    """NOT_FOUND for a job id."""
    return not_found(
        "job with id", job_id, "list the jobs with 'qlm jobs list' (MCP: list_jobs)", job_id=job_id
    )


def job_view(job: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """A stored job as every front end shows it: progress, strategy, data, best, heartbeat, staleness."""
    now = time.time() if now is None else now
    config = job.get("config") if isinstance(job.get("config"), dict) else {}
    done, total, status = job.get("done") or 0, job.get("total"), job.get("status")
    fraction = 1.0 if status == "done" else (min(1.0, done / total) if total else 0.0)
    beat = job.get("heartbeat")
    age = None if not isinstance(beat, (int, float)) else max(0.0, now - beat)
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
            "heartbeat": beat,
            "heartbeat_age_s": age,
            "stale": status == "running" and age is not None and age > STALE_SECONDS,
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
    with stores.reading(home) as store:
        job = None if store is None else store.get_job(job_id)
        if job is None:
            live = running_in_process(job_id)
            if live is None:
                raise unknown_job(job_id)
            return {
                **_live_view(live),
                "trials": {"count": None, "order": "maximize", "first": [], "best": []},
            }
        rows = store.list_trials(job_id) if n > 0 else []
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
        jobs = [] if store is None else store.list_jobs(status=status, limit=listing(limit))
    now = time.time()
    return [job_view(job, now) for job in jobs]


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
        here = cancel_in_process(job_id)
        if job is None:
            if here:
                return {"job_id": job_id, "status": "running", "cancel_requested": True}
            raise unknown_job(job_id)
        flagged = store.request_cancel(job_id)
        status = job["status"] if flagged or here else (store.get_job(job_id) or job)["status"]
    if not flagged and not here:
        raise ConfigError(
            f"job {job_id!r} already finished (status {status}); nothing to cancel",
            hint="only pending or running jobs can be cancelled; see 'qlm jobs list'",
            code="JOB_FINISHED",
            job_id=job_id,
            status=status,
        )
    return {"job_id": job_id, "status": status, "cancel_requested": True}
