"""The recorded backtest: the pure engine run plus events on the bus and a run in the store (what
`qlm.backtest`, the heal loop and walk-forward run)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from qlm_kernel.engine import BacktestResult
from qlm_kernel.errors import QLMError
from qlm_kernel.events import publish
from qlm_kernel.formatting import HEADLINE_STATS
from qlm_kernel.strategy import resolve_strategy
from qlm_kernel.strategy.run import backtest as engine_backtest
from qlm_kernel.workspace.data import resolve_data
from qlm_kernel.workspace.environment import run_environment
from qlm_kernel.workspace.fingerprints import frame_fingerprint
from qlm_kernel.workspace.recording import ensure_event_recorder, record_run, recording_enabled


def recorded_backtest(
    strategy: Any,
    frame: Any,
    *,
    params: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    dataset: str | None = None,
    record: bool | None = None,
    source: str = "python",
    data_source: dict[str, Any] | None = None,
) -> BacktestResult:
    """Backtest ``strategy`` on ``frame`` (an OHLCV frame, ``dataset`` naming it when it is one) with
    ``params`` and ``settings`` given apart, as a research session runs it.

    The pure backtest (`qlm_kernel.strategy.run.backtest`) plus: the run is published on the event bus
    (``engine.backtest.started|finished|failed``) and, unless ``record=False`` (or
    ``QLM_RECORD_RUNS=0``), recorded in the workspace store with its strategy version (the file's
    code, versioned when it changed), data fingerprint, params, settings, stats or error.
    ``res.meta["run_id"]`` is the stored run's id. ``data_source`` (`DataSource.describe()`: a sample
    spec, a dataset name, a file path) is kept in the run's environment with the library versions and
    the result's hashes, so `reproduce` can re-run it; without it the dataset name (if any) is kept.
    """
    recording = recording_enabled(record)
    if recording:
        ensure_event_recorder()
    frame, dataset_name = resolve_data(frame, dataset=dataset)
    settings, params = dict(settings or {}), dict(params or {})
    started = time.perf_counter()
    try:
        strat = resolve_strategy(strategy, **params)
    except QLMError as err:
        _failed(
            strategy_label(strategy),
            params,
            settings,
            err,
            started,
            recording,
            dataset_name,
            frame,
            None,
            source,
        )
        raise
    cls = type(strat)
    label = strategy_label(strategy, cls)
    publish(
        "engine.backtest.started",
        {
            "strategy": label,
            "params": strat.params,
            "settings": settings,
            "bars": len(frame),
            "source": source,
        },
    )
    try:
        result = engine_backtest(strat, frame, **settings)
    except QLMError as err:
        _failed(label, strat.params, settings, err, started, recording, dataset_name, frame, cls, source)
        raise
    duration = time.perf_counter() - started
    run_id = None
    if recording:
        run_id, problem = record_run(
            {
                "strategy": label,
                "code": getattr(cls, "source_text", None),
                "dataset": dataset_name,
                "data_fingerprint": frame_fingerprint(frame),
                "params": result.params,
                "settings": result.settings.to_dict(),
                "stats": result.to_dict(include_trades=False)["stats"],
                "duration_s": duration,
                "source": source,
                "environment": run_environment(
                    result, strategy_cls=cls,
                    data_source=data_source or ({"kind": "dataset", "dataset": dataset_name}
                                                if dataset_name else None),
                ),
            }
        )
        if problem is not None:
            result.meta["record_error"] = problem
    result.meta.update({"run_id": run_id, "dataset": dataset_name, "strategy_label": label})
    stats = result.stats
    publish(
        "engine.backtest.finished",
        {
            "strategy": label,
            "run_id": run_id,
            "duration_s": duration,
            "source": source,
            "stats": {
                k: stats[k] for k in HEADLINE_STATS
            },
        },
    )
    return result


def _failed(
    label: str,
    params: dict[str, Any],
    settings: dict[str, Any],
    err: QLMError,
    started: float,
    recording: bool,
    dataset: str | None,
    frame: Any,
    cls: Any,
    source: str,
) -> None:
    """Publish and (best effort) record a failed run, then let the caller re-raise.

    The error's context gains ``run_id`` and ``strategy_version_id`` (the stored version of the code
    that failed — for a file that did not even load, the file's text as it was read).
    """
    duration = time.perf_counter() - started
    run_id = None
    if recording:
        run_id, _ = record_run(
            {
                "strategy": label,
                "code": getattr(cls, "source_text", None) if cls else _unloadable_code(err, label),
                "dataset": dataset,
                "data_fingerprint": _fingerprint_or_none(frame),
                "params": params,
                "settings": settings,
                "error": err,
                "duration_s": duration,
                "source": source,
            }
        )
    err.context.setdefault("run_id", run_id)
    if run_id is not None:
        err.context.setdefault("strategy_version_id", _run_version_id(run_id))
    publish(
        "engine.backtest.failed",
        {"strategy": label, "run_id": run_id, "error": err.to_dict(), "source": source},
    )


def _unloadable_code(err: QLMError, label: str) -> str | None:
    """The text of a strategy file that failed to load (syntax error, import-time error), if readable."""
    file = err.context.get("file")
    load_codes = {"STRATEGY_SYNTAX", "STRATEGY_IMPORT", "TIMEOUT"}
    if err.code not in load_codes or not file or Path(file).stem != label:
        return None
    try:
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _run_version_id(run_id: int) -> int | None:
    """The strategy version a recorded run is linked to (None when unknown or unreadable)."""
    from qlm_kernel.store import default_store

    try:
        run = default_store().get_run(run_id)
    except QLMError:
        return None
    return run.get("strategy_version_id") if run else None


def _fingerprint_or_none(frame: Any) -> str | None:
    """The data fingerprint of a failed run; None when the frame itself is what was wrong."""
    try:
        return frame_fingerprint(frame)
    except Exception:  # the run's own error is the one to report
        return None


def strategy_label(strategy: Any, cls: Any = None) -> str:
    """The name runs are filed under: the strategy file's stem, else the class name."""
    source_file = getattr(cls, "source_file", None) if cls is not None else None
    if source_file:
        return Path(source_file).stem
    if isinstance(strategy, (str, Path)):
        return Path(str(strategy)).stem
    if cls is not None:
        return getattr(cls, "name", None) or cls.__name__
    return getattr(strategy, "__name__", type(strategy).__name__)
