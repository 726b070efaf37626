"""``qlm jobs list|show|cancel``: a skin over `qlm_kernel.session` (`list_jobs`, `get_job`, `cancel_job`).

``list`` and ``show`` read the database read-only (never creating it) and print the session's job view;
``cancel`` is the session's one cancel (in-process flag and the store's ``cancel_requested``, which a
worker in another process polls between batches). The best trials of ``show`` are ranked by objective,
highest first, unless the job minimizes (``"maximize": false`` in its config). A job whose process died
shows as ``abandoned`` (``show`` says why and how to resume it); one that is silent but not yet reaped
shows as ``running (stale)``.
"""

from __future__ import annotations

import argparse
from typing import Any

from qlm_kernel.cli import output, storeio

JOB_STATUSES = ("pending", "running", "done", "failed", "cancelled", "abandoned")  # = store.JOB_STATUSES
LIST_HEADERS = ("id", "kind", "status", "progress", "best", "created (utc)", "updated (utc)", "cancel")
TRIAL_HEADERS = ("#", "objective", "status", "params", "metrics")


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


# --- commands ---------------------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    """Print the newest jobs (table or ``{"jobs": [...]}``, each as `qlm_kernel.session.job_view`)."""
    from qlm_kernel.session import list_jobs

    jobs = list_jobs(args.status, args.limit)
    if args.json:
        output.emit_json({"jobs": jobs})
    elif jobs:
        output.emit_text(output.table([list_row(j) for j in jobs], headers=LIST_HEADERS))
    else:
        output.note("no jobs recorded" + (f" with status {args.status}" if args.status else " yet"))
    return output.EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    """Print one job with its progress, best result and the first/best trials."""
    from qlm_kernel.session import get_job

    view = get_job(args.id, args.trials)
    if args.json:
        output.emit_json(view)
    else:
        output.emit_text(describe_job(view))
    return output.EXIT_OK


def run_cancel(args: argparse.Namespace) -> int:
    """Ask the job to stop (`qlm_kernel.session.cancel_job`); unknown or finished jobs are errors."""
    from qlm_kernel.session import cancel_job

    reply = cancel_job(args.id)
    if args.json:
        output.emit_json(reply)
    else:
        output.emit_text(f"cancel requested for job {reply['job_id']} (status {reply['status']}); "
                         "the worker stops at its next check")
    return output.EXIT_OK


# --- human output -----------------------------------------------------------------------------------


def progress_text(job: dict[str, Any]) -> str:
    """``120/400 (30%)``, or ``120/?`` while the total is unknown."""
    if job.get("total") is None:
        return f"{job['done']:,}/?"
    return f"{job['done']:,}/{job['total']:,} ({job['progress'] * 100:.0f}%)"


def best_text(best: Any) -> str:
    """The job's best objective value (``best = {"params", "value"}`` in the job view), or '-'."""
    if isinstance(best, dict) and isinstance(best.get("value"), (int, float)):
        return output.fmt_number(best["value"])
    return storeio.NONE


def data_text(job: dict[str, Any]) -> str:
    """Where a job's bars came from: ``dataset NAME``, ``sample {...}`` or ``file PATH``."""
    if job.get("dataset"):
        return f"dataset {job['dataset']}"
    if job.get("sample"):
        return f"sample {storeio.compact(job['sample'])}"
    if job.get("data_file"):
        return f"file {job['data_file']}"
    return "data given in memory"


def status_text(job: dict[str, Any]) -> str:
    """The status, with ``(stale)`` for an active job whose owner went silent."""
    return f"{job['status']} (stale)" if job.get("stale") else str(job["status"])


def list_row(job: dict[str, Any]) -> list[str]:
    """One table row of ``qlm jobs list``."""
    return [job["id"], job["kind"], status_text(job), progress_text(job), best_text(job.get("best")),
            storeio.fmt_time(job.get("created_at")), storeio.fmt_time(job.get("updated_at")),
            "requested" if job.get("cancel_requested") else storeio.NONE]


def trial_rows(trials: list[dict[str, Any]]) -> list[list[str]]:
    """Rows of a trials table: id, objective, status, params and metrics (compact JSON)."""
    return [[str(t["id"]), output.fmt_number(t.get("objective")), t.get("status") or storeio.NONE,
             storeio.compact(t.get("params"), 60), storeio.compact(t.get("metrics"), 60)] for t in trials]


def describe_job(view: dict[str, Any]) -> str:
    """Job header, state, progress, heartbeat, config, best, error, and the trials tables."""
    job, trials = view, view["trials"]
    age = view["heartbeat_age_s"]
    best = view.get("best") or {}
    lines = [
        f"job {job['id']} ({job['kind']}): {status_text(job)}"
        + (", cancel requested" if job.get("cancel_requested") else ""),
        f"progress: {progress_text(job)}",
        f"created {storeio.fmt_time(job.get('created_at'))} UTC, updated "
        f"{storeio.fmt_time(job.get('updated_at'))} UTC, finished {storeio.fmt_time(job.get('finished_at'))}",
        f"worker pid {job.get('pid') or storeio.NONE}"
        + (f" on {job['host']}" if job.get("host") else "")
        + ", last heartbeat "
        + (f"{age:.0f}s ago" if age is not None else storeio.NONE),
        f"search: {job.get('method') or storeio.NONE} over {storeio.compact(job.get('space'))}, "
        f"objective {job.get('objective') or storeio.NONE} "
        f"({'maximize' if job.get('maximize', True) else 'minimize'})",
        f"strategy {job.get('strategy') or storeio.NONE} on {data_text(job)}; settings "
        f"{storeio.compact(job.get('settings'))}",
        f"best: {best_text(best)}"
        + (f" at {storeio.compact(best.get('params'))}" if best.get("params") else ""),
    ]
    if job.get("error"):
        error = job["error"]
        lines += ["", *output.human_error(error if isinstance(error, dict) else {"message": str(error)})
                  .splitlines()]
    error_hint = job["error"].get("hint") if isinstance(job.get("error"), dict) else None
    if job.get("resumable") and not error_hint:
        lines.append(f"resume: the same `qlm optimize` command with --resume {job['id']}, or "
                     f"qlm.optimize.resume({job['id']!r}) in Python")
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
