"""The JSON shapes the sidebar reads: the session's views (`qlm_kernel.session`), plus what only the
sidebar needs (whether a run has an HTML report, a run row trimmed to the display stats)."""

from __future__ import annotations

from typing import Any

from qlm_jupyterlab.workspace import Workspace
from qlm_kernel.formatting import DISPLAY_ORDER

KEY_STATS = (*DISPLAY_ORDER, "bars")
"""The stats a run row carries in the runs list (the full record has them all)."""


def run_view(run: dict[str, Any], workspace: Workspace, *, full: bool = False) -> dict[str, Any]:
    """A run row: key stats (all stats, settings and error with `full`), whether an HTML report exists."""
    stats = run.get("stats") if isinstance(run.get("stats"), dict) else {}
    view: dict[str, Any] = {
        "id": run["id"],
        "strategy": run.get("strategy"),
        "strategy_version_id": run.get("strategy_version_id"),
        "strategy_version": run.get("strategy_version"),
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
    return view
