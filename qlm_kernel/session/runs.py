"""Recorded backtest runs, as every front end lists and shows them (with their strategy version)."""

from __future__ import annotations

from typing import Any

from qlm_kernel.home import PathLike
from qlm_kernel.jsonsafe import json_safe
from qlm_kernel.session.jobs import not_found
from qlm_kernel.session.limits import listing
from qlm_kernel.workspace import stores

RUN_LIST_FIXES = {  # where each front end lists run ids (`QLMError.fixes`)
    "python": "list them with qlm.session.list_runs()",
    "cli": "list them with `qlm runs list`",
    "mcp": "list them with the list_runs tool",
}

VERSION_FIELDS = ("id", "strategy", "version", "sha256", "author", "message", "created_at")


def version_summary(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The identity of a strategy version (no code): id, strategy, version, sha256, author, ..."""
    return None if record is None else {k: record.get(k) for k in VERSION_FIELDS}


def _versions_of(store: Any, runs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Version summaries by version id for ``runs``: one history read per strategy, not one per run."""
    found: dict[int, dict[str, Any]] = {}
    for name in {r["strategy"] for r in runs if r.get("strategy_version_id") is not None}:
        for record in store.strategy_history(name):
            found[record["id"]] = version_summary(record)  # type: ignore[assignment]
    for run in runs:  # a run linked to a version saved under another name
        vid = run.get("strategy_version_id")
        if vid is not None and vid not in found:
            summary = version_summary(store.get_strategy_version(vid))
            if summary is not None:
                found[vid] = summary
    return found


def list_runs(
    limit: int = 20, strategy: str | None = None, status: str | None = None, *, home: PathLike | None = None
) -> list[dict[str, Any]]:
    """The newest runs first (params, settings, stats or error, ``strategy_version``); [] when none."""
    with stores.reading(home) as store:
        if store is None:
            return []
        runs = store.list_runs(limit=listing(limit), strategy=strategy, status=status)
        versions = _versions_of(store, runs)
    return json_safe([{**r, "strategy_version": versions.get(r.get("strategy_version_id"))} for r in runs])


def get_run(run_id: int, *, home: PathLike | None = None) -> dict[str, Any]:
    """One run in full with its ``strategy_version``; NOT_FOUND for an unknown id."""
    if isinstance(run_id, bool) or not str(run_id).isdigit():
        raise not_found("run with id", run_id, "run ids are numbers", fixes=RUN_LIST_FIXES)
    run_id = int(run_id)
    with stores.reading(home) as store:
        run = None if store is None else store.get_run(run_id)
        if run is None:
            raise not_found(
                "run with id",
                run_id,
                "a run id comes from a recorded backtest",
                fixes=RUN_LIST_FIXES,
                run_id=run_id,
            )
        versions = _versions_of(store, [run])
    return json_safe({**run, "strategy_version": versions.get(run.get("strategy_version_id"))})
