"""One heartbeat thread per process: keeps the heartbeat of this process's running jobs fresh.

A job that computes a long batch reports no progress for a while; without a beat another process would
take it for abandoned (`qlm_kernel.store.jobs.orphan_reason`). `keep_alive(store, job_id, working)` adds
a job, `stop(job_id)` removes it; ``working()`` (optional) says whether the job is still being worked on
— a job whose worker was interrupted without finishing it stops beating, so it goes stale and is reaped
even though its process lives on. A daemon thread (``qlm-job-heartbeat``, started on first use) beats every
job of the process in one short transaction every `interval_seconds()` (``QLM_JOB_HEARTBEAT_SECONDS``,
default 5 s), and drops a job once its row is no longer pending/running under this pid (finished,
reaped, resumed elsewhere) or its store was closed. A forked child owns none of its parent's jobs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from qlm_kernel.errors import QLMError

INTERVAL_S = 5.0
"""Default seconds between beats; `qlm_kernel.store.jobs.STALE_AFTER_S` (60 s) is twelve of them."""
INTERVAL_ENV = "QLM_JOB_HEARTBEAT_SECONDS"
_log = logging.getLogger(__name__)
_lock = threading.Lock()
_jobs: dict[str, tuple[Any, Callable[[], bool] | None]] = {}  # job id -> (its Store, working())
_thread: threading.Thread | None = None


def interval_seconds() -> float:
    """Seconds between beats: ``$QLM_JOB_HEARTBEAT_SECONDS`` when it is a positive number, else 5."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, "") or INTERVAL_S)
    except ValueError:
        return INTERVAL_S
    return value if 0 < value < float("inf") else INTERVAL_S


def keep_alive(store: Any, job_id: str, working: Callable[[], bool] | None = None) -> None:
    """Beat ``job_id`` (a job of ``store`` owned by this process) until `stop` or until it finishes,
    skipping the beats while ``working()`` is False."""
    global _thread
    with _lock:
        _jobs[job_id] = (store, working)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="qlm-job-heartbeat", daemon=True)
            _thread.start()


def stop(job_id: str) -> None:
    """Stop beating ``job_id`` (no-op when it is not beating)."""
    with _lock:
        _jobs.pop(job_id, None)


def _run() -> None:
    global _thread
    while True:
        time.sleep(interval_seconds())
        with _lock:
            if not _jobs:  # keep_alive starts a new thread under the same lock
                _thread = None
                return
            jobs = list(_jobs.items())
        by_store: dict[int, tuple[Any, list[str]]] = {}
        for job_id, (store, working) in jobs:
            if working is None or _safely(working):
                by_store.setdefault(id(store), (store, []))[1].append(job_id)
        for store, ids in by_store.values():
            _beat(store, ids)


def _safely(working: Callable[[], bool]) -> bool:
    try:
        return bool(working())
    except Exception:  # a broken predicate must not kill the heartbeat of the other jobs
        _log.exception("job heartbeat: working() failed")
        return True


def _beat(store: Any, ids: list[str]) -> None:
    """One beat for one store's jobs; jobs that stopped being this process's running jobs are dropped."""
    try:
        alive = set(store.beat_jobs(ids))
    except QLMError as err:
        if getattr(err, "code", None) != "DB_CLOSED":
            _log.warning("job heartbeat failed (will retry): %s", err)
            return
        alive = set()
    with _lock:
        for job_id in ids:
            entry = _jobs.get(job_id)
            if job_id not in alive and entry is not None and entry[0] is store:
                del _jobs[job_id]


def _after_fork_in_child() -> None:
    global _lock, _thread
    _lock, _thread = threading.Lock(), None
    _jobs.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
