"""The optimization job's life: store row (progress, heartbeat, trials), bus events, cancellation.

`JobTracker` is the only place that talks to the store and the bus for a job, so the search and the
runner stay pure. ``record=False`` keeps the events but touches no store. A recorded job is owned by
this process (pid, host) and beats (`qlm_kernel.store.heartbeat`) from its start to `finish`, so a long
batch without progress is never taken for abandoned. Resuming a job another live process still runs is
refused (JOB_RUNNING); a failed, cancelled or abandoned one (or one whose owner is gone) is resumed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from qlm_kernel.errors import OptimizationError
from qlm_kernel.events import publish
from qlm_kernel.optimization.runner import in_batch
from qlm_kernel.store import heartbeat
from qlm_kernel.store.jobs import new_job_id, orphan_reason, stale_after_seconds

PROGRESS_INTERVAL_S = 0.25  # at most ~4 job.progress events per second
IDLE_GRACE_S = 30.0
"""Outside a batch, a job that the search has not touched for this long no longer beats (interrupted)."""
_cancel_lock = threading.Lock()
_cancelled: set[str] = set()
_running: dict[str, JobTracker] = {}


def cancel_in_process(job_id: str) -> bool:
    """Flag ``job_id`` to stop after its current batch if it runs in this process (recorded or not);
    False when no such job runs here. Jobs in other processes are stopped through the store's flag
    (`qlm_kernel.session.cancel_job` sets both)."""
    with _cancel_lock:
        if job_id not in _running:
            return False
        _cancelled.add(job_id)
        return True


def running_in_process(job_id: str) -> dict[str, Any] | None:
    """The live progress payload of a job running in this process, else None."""
    with _cancel_lock:
        tracker = _running.get(job_id)
    return None if tracker is None else tracker.payload()


class JobTracker:
    """Store + events + cancel checks of one optimization job."""

    def __init__(
        self,
        *,
        record: bool,
        config: dict[str, Any],
        total: int,
        resume: str | None = None,
        progress: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        from qlm_kernel.store import default_store

        self.store = default_store() if record else None
        self.total = total
        self.progress_cb = progress
        self.started = time.monotonic()
        self._thread = threading.get_ident()
        self._touched = self.started
        self._last_emit = float("-inf")
        self.done = 0
        self.computed = 0
        self.best_params: dict[str, Any] | None = None
        self.best_value: float | None = None
        if resume is not None:
            self.job_id = resume
            if self.store is not None:
                _refuse_live(self.store, resume)
                self.store.update_job(resume, status="running", total=total, pid=os.getpid(), error=None)
        elif self.store is not None:
            self.job_id = self.store.create_job("optimize", config, total=total)
            self.store.update_job(self.job_id, status="running")
        else:
            self.job_id = new_job_id()
        if self.store is not None:
            heartbeat.keep_alive(self.store, self.job_id, self.working)
        # A resumed job that was cancelled before keeps the store's flag (it cannot be cleared): then
        # only the in-process `cancel` stops it.
        self._store_flag_stale = (
            resume is not None and self.store is not None and self.store.cancel_requested(self.job_id)
        )
        with _cancel_lock:
            _cancelled.discard(self.job_id)
            _running[self.job_id] = self
        publish(
            "job.created",
            {
                "job_id": self.job_id,
                "kind": config.get("method"),
                "total": total,
                "strategy": config.get("strategy"),
                "objective": config.get("objective"),
                "resumed": resume is not None,
            },
        )

    def working(self) -> bool:
        """Whether the job is still being worked on: a batch is computing, or the search touched the job
        in the last `IDLE_GRACE_S` (an interrupted search stops both, so its job goes stale)."""
        return in_batch(self._thread) or time.monotonic() - self._touched < IDLE_GRACE_S

    def cancel_requested(self) -> bool:
        """The in-process flag or the store's flag (set by another process)."""
        self._touched = time.monotonic()
        with _cancel_lock:
            if self.job_id in _cancelled:
                return True
        if self.store is None or self._store_flag_stale:
            return False
        return self.store.cancel_requested(self.job_id)

    def record(self, rows: list[dict[str, Any]], computed: int) -> None:
        """Store newly computed trial rows and report progress (events throttled)."""
        self._touched = time.monotonic()
        self.done += len(rows)
        self.computed += computed
        new = [r for r in rows if not r.get("_stored")]
        if self.store is not None and new:
            self.store.add_trials(self.job_id, [_store_row(r) for r in new])
            for r in new:
                r["_stored"] = True
        now = time.monotonic()
        if self.store is not None:
            self.store.update_job(self.job_id, done=self.done, best=self._best())
        if now - self._last_emit >= PROGRESS_INTERVAL_S or self.done >= self.total:
            self._last_emit = now
            self._emit()

    def set_best(self, params: dict[str, Any] | None, value: float | None) -> None:
        self.best_params, self.best_value = params, value

    def payload(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        rate = self.computed / elapsed if elapsed > 0 else 0.0
        left = max(self.total - self.done, 0)
        return {
            "job_id": self.job_id,
            "done": self.done,
            "total": self.total,
            "best_params": self.best_params,
            "best_value": self.best_value,
            "rate": rate,
            "eta_s": (left / rate) if rate > 0 else None,
            "elapsed_s": elapsed,
        }

    def _emit(self) -> None:
        payload = self.payload()
        publish("job.progress", payload)
        if self.progress_cb is not None:
            self.progress_cb(payload)

    def _best(self) -> dict[str, Any] | None:
        if self.best_params is None:
            return None
        return {"params": self.best_params, "value": self.best_value}

    def finish(self, status: str, error: Any = None) -> None:
        """Final store status and event: job.finished | job.cancelled | job.failed."""
        self._emit()
        if self.store is not None:
            self.store.update_job(self.job_id, done=self.done)
            self.store.finish_job(self.job_id, status, best=self._best(), error=error)
        payload = {**self.payload(), "seconds": time.monotonic() - self.started}
        if status == "done":
            publish("job.finished", payload)
        elif status == "cancelled":
            publish("job.cancelled", payload)
        else:
            publish(
                "job.failed", {**payload, "error": error.to_dict() if hasattr(error, "to_dict") else error}
            )
        with _cancel_lock:
            _cancelled.discard(self.job_id)
            _running.pop(self.job_id, None)
        heartbeat.stop(self.job_id)


def _refuse_live(store: Any, job_id: str) -> None:
    """JOB_RUNNING when ``job_id`` is pending/running here or under a live owner elsewhere."""
    with _cancel_lock:
        here = job_id in _running
    job = store.get_job(job_id)
    if job is None or job.get("status") not in ("pending", "running"):
        return
    if not here and job.get("pid") == os.getpid():
        return  # this process owned it and is not running it any more
    if here or orphan_reason(job, time.time(), stale_after_seconds()) is None:
        raise OptimizationError(
            f"job {job_id} is still {job['status']} "
            f"(pid {job.get('pid')} on {job.get('host') or 'this host'})",
            code="JOB_RUNNING",
            hint="wait for it to finish, or cancel it first ('qlm jobs cancel ID'); a job whose process "
            "died is resumable once it shows as abandoned",
            job_id=job_id,
            pid=job.get("pid"),
            host=job.get("host"),
        )


def _store_row(row: dict[str, Any]) -> dict[str, Any]:
    """Trial row -> store row: objective column + metrics (stats, equity samples, error, order)."""
    return {
        "params": row["params"],
        "trial_key": row["trial_key"],
        "status": row["status"],
        "objective": row.get("objective"),
        "metrics": {
            "stats": row.get("stats"),
            "equity": row.get("equity"),
            "error": row.get("error"),
            "index": row.get("index"),
        },
    }


def stored_rows(store: Any, job_id: str) -> dict[str, dict[str, Any]]:
    """A job's stored trials as trial rows by trial key (what a resume looks up instead of recomputing)."""
    out: dict[str, dict[str, Any]] = {}
    for t in store.list_trials(job_id):
        m = t.get("metrics") or {}
        out[t["trial_key"]] = {
            "params": t["params"],
            "trial_key": t["trial_key"],
            "status": t["status"],
            "stats": m.get("stats"),
            "equity": m.get("equity"),
            "error": m.get("error"),
            "_stored": True,
        }
    return out
