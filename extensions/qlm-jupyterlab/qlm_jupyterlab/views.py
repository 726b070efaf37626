"""The JSON shapes the sidebar reads, built from the store's records (a None store = empty workspace)."""

from __future__ import annotations

import time
from typing import Any

from qlm_jupyterlab.workspace import Workspace
from qlm_kernel.jsonsafe import json_safe
from qlm_kernel.store import Store

KEY_STATS = ("final_value", "total_return", "sharpe", "sortino", "max_drawdown", "n_trades", "win_rate",
             "profit_factor", "cagr", "bars")
STALE_SECONDS = 60.0  # a running job whose heartbeat is older than this is flagged "stale"


def job_view(job: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """A job row for the panel: progress fraction, strategy, method, best, staleness."""
    now = time.time() if now is None else now
    config = job.get("config") if isinstance(job.get("config"), dict) else {}
    done, total = job.get("done") or 0, job.get("total")
    progress = (min(1.0, done / total) if total else (1.0 if job.get("status") == "done" else 0.0))
    if job.get("status") == "done":
        progress = 1.0
    beat = job.get("heartbeat")
    stale = (job.get("status") == "running" and isinstance(beat, (int, float)) and now - beat > STALE_SECONDS)
    return json_safe({
        "id": job["id"],
        "kind": job.get("kind"),
        "status": job.get("status"),
        "done": done,
        "total": total,
        "progress": progress,
        "strategy": config.get("strategy") or config.get("class_name"),
        "method": config.get("method"),
        "objective": config.get("objective"),
        "space": config.get("space"),
        "best": job.get("best"),
        "error": job.get("error"),
        "cancel_requested": job.get("cancel_requested", False),
        "pid": job.get("pid"),
        "heartbeat": beat,
        "stale": stale,
        "created_at": job.get("created_at"),
        "updated_at": job.get("updated_at"),
        "finished_at": job.get("finished_at"),
    })


def jobs(store: Store | None, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest jobs first, shaped by `job_view`."""
    if store is None:
        return []
    now = time.time()
    return [job_view(job, now) for job in store.list_jobs(status=status, limit=limit)]


def run_view(run: dict[str, Any], workspace: Workspace, *, full: bool = False) -> dict[str, Any]:
    """A run row: key stats (all stats, settings and error with `full`), whether an HTML report exists."""
    stats = run.get("stats") if isinstance(run.get("stats"), dict) else {}
    view: dict[str, Any] = {
        "id": run["id"],
        "strategy": run.get("strategy"),
        "strategy_version_id": run.get("strategy_version_id"),
        "status": run.get("status"),
        "dataset": run.get("dataset"),
        "params": run.get("params") or {},
        "stats": stats if full else {k: stats[k] for k in KEY_STATS if k in stats},
        "duration_s": run.get("duration_s"),
        "source": run.get("source"),
        "created_at": run.get("created_at"),
        "has_report": workspace.report_path(run["id"]).is_file(),
    }
    if full:
        view.update(settings=run.get("settings") or {}, error=run.get("error"),
                    data_fingerprint=run.get("data_fingerprint"))
    else:
        error = run.get("error") if isinstance(run.get("error"), dict) else None
        view["error"] = None if error is None else {k: error.get(k) for k in ("type", "code", "message")}
    return json_safe(view)


def runs(store: Store | None, workspace: Workspace, *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest runs first, shaped by `run_view`."""
    if store is None:
        return []
    return [run_view(run, workspace) for run in store.list_runs(limit=limit)]


def strategies(store: Store | None) -> list[dict[str, Any]]:
    """Every versioned strategy with its version count and latest version."""
    return [] if store is None else json_safe(store.list_strategies())


def strategy_versions(store: Store | None, name: str) -> list[dict[str, Any]]:
    """All versions of one strategy, oldest first, without code."""
    return [] if store is None else json_safe(store.strategy_history(name))


def heal_sessions(store: Store | None, *, limit: int = 30) -> list[dict[str, Any]]:
    """The newest heal sessions first (without steps)."""
    return [] if store is None else json_safe(store.list_heal_sessions(limit=limit))


def heal_session(store: Store | None, session_id: str) -> dict[str, Any] | None:
    """One heal session with its steps in order (diffs are in the ``patch`` steps' data)."""
    return None if store is None else json_safe(store.get_heal_session(session_id))
