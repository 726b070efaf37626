"""``qlm jobs list|show|cancel``: long-running jobs (optimizations, checks) recorded in the store.

``list`` and ``show`` read the database read-only (never creating it); ``cancel`` sets the job's
``cancel_requested`` flag, which the worker (possibly another process) polls between batches. The
best trials of ``show`` are ranked by objective, highest first, unless the job's config says
``"direction": "minimize"`` (or ``"maximize": false``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from qlm_kernel.cli import output, storeio
from qlm_kernel.errors import ConfigError

JOB_STATUSES = ("pending", "running", "done", "failed", "cancelled")  # = qlm_kernel.store.JOB_STATUSES
LIST_HEADERS = ("id", "kind", "status", "progress", "best", "created (utc)", "updated (utc)", "cancel")
TRIAL_HEADERS = ("#", "objective", "status", "params", "metrics")
MINIMIZE = {"min", "minimize", "minimise"}


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``qlm jobs list``, ``qlm jobs show`` and ``qlm jobs cancel``."""
    p = subparsers.add_parser("jobs", parents=[common], help="long-running jobs: list, show, cancel",
                              description="Jobs (optimizations, checks) recorded in $QLM_HOME/qlm.db.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True)
    lst = actions.add_parser("list", parents=[common], help="the newest jobs with their progress")
    lst.add_argument("--status", choices=JOB_STATUSES, help="only jobs in this state")
    lst.add_argument("--limit", type=storeio.count, default=20, metavar="N", help="at most N jobs (20)")
    lst.set_defaults(run=run_list)
    show = actions.add_parser("show", parents=[common], help="one job: state, progress, best, trials")
    show.add_argument("id", metavar="ID", help="job id (see 'qlm jobs list')")
    show.add_argument("--trials", type=storeio.count, default=5, metavar="N",
                      help="show the first N and the best N trials (5; 0 for none)")
    show.set_defaults(run=run_show)
    cancel = actions.add_parser("cancel", parents=[common], help="ask a running or pending job to stop")
    cancel.add_argument("id", metavar="ID", help="job id")
    cancel.set_defaults(run=run_cancel)


# --- reading ----------------------------------------------------------------------------------------


def progress(job: dict[str, Any]) -> dict[str, Any]:
    """``{"done", "total", "fraction"}`` (fraction None while the total is unknown)."""
    done, total = job.get("done") or 0, job.get("total")
    fraction = min(1.0, done / total) if total else None
    return {"done": done, "total": total, "fraction": fraction}


def minimizing(job: dict[str, Any]) -> bool:
    """True when the job's config asks for the lowest objective (``direction``/``maximize`` keys)."""
    config = job.get("config")
    if not isinstance(config, dict):
        return False
    direction = str(config.get("direction", "")).lower()
    return direction in MINIMIZE or config.get("maximize") is False


def best_trials(trials: list[dict[str, Any]], n: int, *, minimize: bool) -> list[dict[str, Any]]:
    """The `n` best trials by objective (trials without an objective never rank)."""
    scored = [t for t in trials if isinstance(t.get("objective"), (int, float))]
    scored.sort(key=lambda t: t["objective"], reverse=not minimize)
    return scored[:n]


def job_view(store: Any, job: dict[str, Any], n: int) -> dict[str, Any]:
    """What ``jobs show`` prints: the job, its progress, heartbeat age and first/best `n` trials."""
    trials = store.list_trials(job["id"]) if n > 0 else []
    beat = job.get("heartbeat")
    minimize = minimizing(job)
    return {
        "job": job,
        "progress": progress(job),
        "heartbeat_age_s": None if beat is None else max(0.0, time.time() - beat),
        "trials": {
            "count": len(trials) if n > 0 else None,
            "order": "minimize" if minimize else "maximize",
            "first": trials[:n],
            "best": best_trials(trials, n, minimize=minimize),
        },
    }


def load_job(job_id: str, n: int) -> dict[str, Any]:
    """`job_view` of one job; NOT_FOUND (exit 5) for an unknown id or an empty workspace."""
    with storeio.store() as store:
        job = None if store is None else store.get_job(job_id)
        if job is None:
            raise unknown_job(job_id)
        return job_view(store, job, n)


def unknown_job(job_id: str) -> ConfigError:
    """The NOT_FOUND error of a job id."""
    return storeio.not_found("job with id", job_id, "list the jobs with 'qlm jobs list'", job_id=job_id)


# --- commands ---------------------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    """Print the newest jobs (table or ``{"jobs": [...]}``, each with its ``progress``)."""
    with storeio.store() as store:
        jobs = [] if store is None else store.list_jobs(status=args.status, limit=args.limit)
    if args.json:
        output.emit_json({"jobs": storeio.json_safe([{**j, "progress": progress(j)} for j in jobs])})
    elif jobs:
        output.emit_text(output.table([list_row(j) for j in jobs], headers=LIST_HEADERS))
    else:
        output.note("no jobs recorded" + (f" with status {args.status}" if args.status else " yet"))
    return output.EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    """Print one job with its progress, best result and the first/best trials."""
    view = load_job(args.id, args.trials)
    if args.json:
        output.emit_json(storeio.json_safe(view))
    else:
        output.emit_text(describe_job(view))
    return output.EXIT_OK


def run_cancel(args: argparse.Namespace) -> int:
    """Flag the job for cancellation; a finished or unknown job is an error (exit 5)."""
    with storeio.store(readonly=False) as store:
        if store is None:
            raise unknown_job(args.id)
        flagged = store.request_cancel(args.id)  # NOT_FOUND for an unknown id
        job = store.get_job(args.id) or {"status": "unknown"}
    if not flagged:
        raise ConfigError(f"job {args.id!r} already finished (status {job['status']}); nothing to cancel",
                          hint="only pending or running jobs can be cancelled; see 'qlm jobs list'",
                          code="JOB_FINISHED", job_id=args.id, status=job["status"])
    if args.json:
        output.emit_json({"id": args.id, "status": job["status"], "cancel_requested": True})
    else:
        output.emit_text(f"cancel requested for job {args.id} (status {job['status']}); "
                         "the worker stops at its next check")
    return output.EXIT_OK


# --- human output -----------------------------------------------------------------------------------


def progress_text(job: dict[str, Any]) -> str:
    """``120/400 (30%)``, or ``120/?`` while the total is unknown."""
    p = progress(job)
    if p["total"] is None:
        return f"{p['done']:,}/?"
    percent = f" ({p['fraction'] * 100:.0f}%)" if p["fraction"] is not None else ""
    return f"{p['done']:,}/{p['total']:,}{percent}"


def best_text(best: Any, width: int = 40) -> str:
    """The job's best result in one short line: its objective when there is one, else compact JSON."""
    if best is None:
        return storeio.NONE
    if isinstance(best, dict) and isinstance(best.get("objective"), (int, float)):
        return output.fmt_number(best["objective"])
    return storeio.compact(best, width)


def list_row(job: dict[str, Any]) -> list[str]:
    """One table row of ``qlm jobs list``."""
    return [job["id"], job["kind"], job["status"], progress_text(job), best_text(job.get("best")),
            storeio.fmt_time(job.get("created_at")), storeio.fmt_time(job.get("updated_at")),
            "requested" if job.get("cancel_requested") else storeio.NONE]


def trial_rows(trials: list[dict[str, Any]]) -> list[list[str]]:
    """Rows of a trials table: id, objective, status, params and metrics (compact JSON)."""
    return [[str(t["id"]), output.fmt_number(t.get("objective")), t.get("status") or storeio.NONE,
             storeio.compact(t.get("params"), 60), storeio.compact(t.get("metrics"), 60)] for t in trials]


def describe_job(view: dict[str, Any]) -> str:
    """Job header, state, progress, heartbeat, config, best, error, and the trials tables."""
    job, trials = view["job"], view["trials"]
    age = view["heartbeat_age_s"]
    lines = [
        f"job {job['id']} ({job['kind']}): {job['status']}"
        + (", cancel requested" if job.get("cancel_requested") else ""),
        f"progress: {progress_text(job)}",
        f"created {storeio.fmt_time(job.get('created_at'))} UTC, updated "
        f"{storeio.fmt_time(job.get('updated_at'))} UTC, finished {storeio.fmt_time(job.get('finished_at'))}",
        f"worker pid {job.get('pid') or storeio.NONE}, last heartbeat "
        + (f"{age:.0f}s ago" if age is not None else storeio.NONE),
        f"config: {storeio.compact(job.get('config'))}",
        f"best: {storeio.compact(job.get('best'))}",
    ]
    if job.get("error"):
        error = job["error"]
        lines += ["", *output.human_error(error if isinstance(error, dict) else {"message": str(error)})
                  .splitlines()]
    if trials["count"] is not None:
        lines += trials_section(trials)
    return "\n".join(lines)


def trials_section(trials: dict[str, Any]) -> list[str]:
    """``trials: N`` then the first and the best trials as tables."""
    lines = ["", f"trials: {trials['count']:,}"]
    if not trials["count"]:
        return lines
    lines += ["", f"first {len(trials['first'])}:", output.table(trial_rows(trials["first"]), TRIAL_HEADERS)]
    label = "lowest" if trials["order"] == "minimize" else "highest"
    if trials["best"]:
        lines += ["", f"best {len(trials['best'])} ({label} objective):",
                  output.table(trial_rows(trials["best"]), TRIAL_HEADERS)]
    else:
        lines += ["", "best: no trial has an objective yet"]
    return lines
