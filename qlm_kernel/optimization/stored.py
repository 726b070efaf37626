"""An optimization job read back from the store as an `OptimizationResult`, nothing re-run: its trials'
params, stats and sampled equity are stored per trial, its space, method, objective and constraints in
its config, and the sample timestamps come from its data (a sample spec, a dataset or a file)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from qlm_kernel.errors import OptimizationError
from qlm_kernel.optimization.evaluate import is_feasible, sample_positions
from qlm_kernel.optimization.result import OptimizationResult
from qlm_kernel.store.jobs import JOB_LIST_FIXES


def stored_result(job_id: str, *, data: Any = None) -> OptimizationResult:
    """Job ``job_id`` as an `OptimizationResult` (its ``sample_index`` from ``data`` when given, else from
    the data its config names; a job on an in-memory frame gets a positional index without it)."""
    from qlm_kernel.store import default_store

    store = default_store()
    job = store.get_job(str(job_id))
    if job is None or job.get("kind") != "optimize":
        raise OptimizationError(f"no optimization job {job_id!r}", code="NOT_FOUND",
                                hint="a job id comes from an optimization", fixes=JOB_LIST_FIXES,
                                job_id=str(job_id))
    config = job.get("config") or {}
    objective = str(config.get("objective") or "sharpe")
    constraints = config.get("constraints")
    if isinstance(constraints, dict):
        constraints = {k: tuple(v) for k, v in constraints.items()}
    rows = []
    for k, t in enumerate(store.list_trials(str(job_id))):
        m = t.get("metrics") or {}
        stats = m.get("stats")
        value = (stats or {}).get(objective) if t["status"] == "ok" else None
        value = float(value) if value is not None else None
        rows.append({"params": t["params"], "trial_key": t["trial_key"], "status": t["status"],
                     "stats": stats, "equity": m.get("equity"), "error": m.get("error"), "index": k,
                     "objective": value,
                     "feasible": t["status"] == "ok" and is_feasible(stats, value, constraints)})
    index = _sample_index(config, data, rows)
    return OptimizationResult(rows, space=config.get("space") or {}, method=str(config.get("method")),
                              objective=objective, maximize=bool(config.get("maximize", True)),
                              status=str(job.get("status")), job_id=str(job_id), config=config,
                              sample_index=index, min_trades=config.get("min_trades"))


def job_data(config: dict[str, Any]) -> Any:
    """The data a job's config names — a stored universe, a sample spec, a dataset or a file — loaded;
    None when it ran on an in-memory frame or its data cannot be loaded any more (moved, deleted)."""
    from qlm_kernel.errors import QLMError
    from qlm_kernel.workspace import resolve_data
    from qlm_kernel.workspace.data import universe_of

    try:
        if config.get("dataset"):
            universe = universe_of(None, config["dataset"])
            if universe is not None:
                return universe
        if config.get("sample"):
            return resolve_data(sample=dict(config["sample"]))[0]
        if config.get("dataset"):
            return resolve_data(dataset=config["dataset"])[0]
        if config.get("data_file"):
            return resolve_data(config["data_file"])[0]
    except QLMError:
        return None
    return None


def _sample_index(config: dict[str, Any], data: Any, rows: list[dict[str, Any]]) -> pd.Index:
    """The timestamps of the trials' equity samples (positions when the data is not known)."""
    from qlm_kernel.workspace import resolve_data

    frame = job_data(config) if data is None else data
    if frame is None:
        longest = max((len(r["equity"] or []) for r in rows), default=0)
        return pd.RangeIndex(longest)
    if not hasattr(frame, "index"):
        frame = resolve_data(frame)[0]
    return pd.Index(frame.index[sample_positions(len(frame.index))])
