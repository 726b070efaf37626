"""`optimize()`: search a strategy's parameters on one dataset, as a recorded, resumable job."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from qlm_kernel.engine.settings import SETTING_NAMES, BacktestSettings, check_settings, closest
from qlm_kernel.errors import OptimizationError, QLMError, spelled
from qlm_kernel.optimization.evaluate import (
    Evaluator,
    PortfolioEvaluator,
    check_constraints,
    check_objective,
    is_feasible,
)
from qlm_kernel.optimization.job import JobTracker, stored_rows
from qlm_kernel.optimization.result import OptimizationResult, best_row, score
from qlm_kernel.optimization.runner import DaskRunner, ThreadRunner
from qlm_kernel.optimization.search import (
    SearchCancelledError,
    choose_method,
    genetic_search,
    grid_search,
    planned_trials,
    random_search,
)
from qlm_kernel.optimization.space import resolve_space
from qlm_kernel.store import trial_key
from qlm_kernel.store.jobs import JOB_LIST_FIXES
from qlm_kernel.workspace import ensure_event_recorder, frame_fingerprint, recording_enabled, resolve_data
from qlm_kernel.workspace.data import universe_of
from qlm_kernel.workspace.environment import library_versions

COMPARED = (
    "strategy_sha",
    "data_fingerprint",
    "space",
    "method",
    "objective",
    "maximize",
    "settings",
    "seed",
    "n_trials",
    "constraints",
    "patience",
)


def optimize(
    strategy: Any,
    data: Any = None,
    space: Mapping[str, Any] | None = None,
    *,
    method: str = "auto",
    objective: str = "sharpe",
    maximize: bool | None = None,
    constraints: Mapping[str, Any] | Callable[[dict[str, Any]], bool] | None = None,
    n_trials: int | None = None,
    seed: int = 0,
    executor: Any = None,
    n_jobs: int | None = None,
    resume: str | None = None,
    batch_size: int | None = None,
    record: bool = True,
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    progress: Callable[[dict[str, Any]], Any] | None = None,
    patience: int = 5,
    max_trials: int | None = None,
    min_trades: int | None = None,
    **settings: Any,
) -> OptimizationResult:
    """Search ``space`` for the parameters of ``strategy`` that are best by ``objective`` on ``data``.

    ``space``: {param: values}; a name mapped to None (or ``space=None``) uses the Param's declared
    grid. ``method``: "grid", "random" (``n_trials`` distinct samples, seeded), "genetic" (DEAP,
    seeded, early stop after ``patience`` stale generations) or "auto" (grid up to 5000 combinations,
    else genetic). ``objective``: a stats key; ``maximize`` defaults to True except for volatility,
    max_drawdown_bars, fees_paid, rejected_orders (max_drawdown is negative, so it is maximized).
    ``constraints``: {stat: (op, value)} or callable(stats) -> bool; violators are kept, marked
    infeasible, never best. ``min_trades``: a trial with fewer trades is infeasible (never best); the
    best's FEW_TRADES warning stays at 30 trades. ``executor``: None (threads, ``n_jobs``) or a
    dask.distributed Client.
    ``resume``: a job id to finish (config must match). ``max_trials`` refuses (LIMIT_EXCEEDED) a
    search planned to run more evaluations, before any work. Other keywords are backtest settings.
    """
    _check_own_keywords(settings)
    settings = check_settings(settings, what="keyword", error=OptimizationError,
                              params_hint="strategy parameters go in space={'name': [values...]}")
    stored_cfg = _stored_config(resume) if resume is not None else None
    record = record or resume is not None  # a resumed job lives in the store
    if stored_cfg is not None:
        if data is None and dataset is None and sample is None:
            dataset, sample = stored_cfg.get("dataset"), stored_cfg.get("sample")
            data = stored_cfg.get("data_file") if dataset is None and sample is None else None
        space = space if space is not None else stored_cfg.get("space")
        method = stored_cfg.get("method", method) if method == "auto" else method
        n_trials = n_trials if n_trials is not None else stored_cfg.get("n_trials")
    universe = universe_of(data, dataset)
    if universe is not None:  # a portfolio: the strategy on every symbol, shared cash
        frame, dataset_name, fingerprint = None, universe.name, universe.fingerprint
    else:
        frame, dataset_name = resolve_data(data, dataset=dataset, sample=sample)
        fingerprint = frame_fingerprint(frame)
    cls, fixed = _strategy_class(strategy)
    space_ = resolve_space(cls, space)
    method_ = choose_method(method, space_)
    maximize_ = check_objective(objective, maximize)
    check_constraints(constraints)
    constraints = with_min_trades(constraints, min_trades)
    total = planned_trials(method_, space_, n_trials)
    if max_trials is not None and total > max_trials:
        raise OptimizationError(
            f"this {method_} search plans {total:,} evaluations, over the limit of {max_trials:,}",
            hint="narrow the space (fewer values per parameter), or use method='random'/'genetic' with a "
            "smaller n_trials",
            code="LIMIT_EXCEEDED",
            limit=max_trials,
            value=total,
        )
    settings_obj = BacktestSettings(**settings)
    config = {
        "strategy": getattr(cls, "name", cls.__name__),
        "strategy_path": getattr(cls, "source_file", None),
        "class_name": cls.__name__,
        "strategy_sha": _source_sha(cls),
        "fixed_params": fixed,
        "dataset": dataset_name,
        "sample": sample,
        "data_file": _data_file(data, dataset_name),
        "data_fingerprint": fingerprint,
        "space": space_,
        "method": method_,
        "method_requested": method,
        "objective": objective,
        "maximize": maximize_,
        "constraints": dict(constraints) if isinstance(constraints, Mapping) else None,
        "settings": settings_obj.to_dict(),
        "seed": seed,
        "min_trades": min_trades,
        "versions": library_versions(),  # what computed the trials (docs/optimization.md "Reproducing a run")
        "n_trials": n_trials if method_ != "grid" else None,
        "patience": patience,
    }
    config = json.loads(json.dumps(config, default=str))  # exactly what the store gives back on resume
    if stored_cfg is not None:
        _check_same(stored_cfg, config, resume)  # type: ignore[arg-type]
    if universe is not None:
        if executor is not None:
            raise OptimizationError(
                "a portfolio optimization runs on threads here; a Dask executor is not supported yet",
                hint="drop executor= (threads use every core: n_jobs=)", code="NOT_SUPPORTED",
            )
        evaluator: Evaluator = PortfolioEvaluator(cls, universe, settings_obj.to_dict(), fixed)
    else:
        evaluator = Evaluator(cls, frame, settings_obj.to_dict(), fixed)
    if record and recording_enabled(None):
        ensure_event_recorder()  # the job's events reach the store (other processes, the JupyterLab sidebar)
    tracker = JobTracker(record=record, config=config, total=total, resume=resume, progress=progress)
    ledger = _TrialLedger(cls, fixed, fingerprint, settings_obj.to_dict(), tracker.store)
    known: dict[str, dict[str, Any]] = {}
    if resume is not None and tracker.store is not None:
        known = stored_rows(tracker.store, resume)
    try:
        runner: Any = (
            ThreadRunner(evaluator, n_jobs)
            if executor is None
            else DaskRunner(executor, cls, frame, settings_obj.to_dict(), fixed, tracker.job_id)
        )
    except Exception as exc:
        tracker.finish("failed", _as_error(exc))
        raise
    size = max(1, int(batch_size or 4 * runner.workers))
    rows: list[dict[str, Any]] = []
    state = {"first": True}

    def evaluate(params_list: list[dict[str, Any]]) -> list[float]:
        scores: list[float] = []
        for start in range(0, len(params_list), size):
            if tracker.cancel_requested():
                raise SearchCancelledError
            chunk = params_list[start : start + size]
            keys = [trial_key(p) for p in chunk]
            todo = [p for p, k in zip(chunk, keys, strict=True) if k not in known]
            computed = runner.run(todo) if todo else []
            fresh = iter(computed)
            batch = []
            for p, k in zip(chunk, keys, strict=True):
                row = dict(known[k]) if k in known else next(fresh)
                row["params"] = dict(p)
                row["index"] = len(rows) + len(batch)
                value = (row.get("stats") or {}).get(objective) if row["status"] == "ok" else None
                row["objective"] = float(value) if value is not None else None
                row["feasible"] = row["status"] == "ok" and is_feasible(
                    row["stats"], row["objective"], constraints
                )
                batch.append(row)
            if state["first"] and computed and all(r["status"] == "error" for r in computed):
                raise QLMError.from_dict(computed[0]["error"])
            state["first"] = False
            rows.extend(batch)
            ledger.note([r for r, k in zip(batch, keys, strict=True) if k not in known])
            best = best_row(rows, maximize_)
            tracker.set_best(best["params"] if best else None, best["objective"] if best else None)
            tracker.record(batch, len(computed))
            scores.extend(score(r, maximize_) for r in batch)
        return scores

    status = "done"
    try:
        if method_ == "grid":
            grid_search(space_, evaluate, size)
        elif method_ == "random":
            random_search(space_, evaluate, total, seed, size)
        else:
            genetic_search(space_, evaluate, total, seed, patience=patience)
    except SearchCancelledError:
        status = "cancelled"
    except Exception as exc:
        tracker.finish("failed", _as_error(exc))
        raise
    finally:
        runner.close()
    tracker.finish(status)
    sample_index = (universe.index if universe is not None else frame.index)[evaluator.positions]
    return OptimizationResult(
        rows,
        min_trades=min_trades,
        space=space_,
        method=method_,
        objective=objective,
        maximize=maximize_,
        status=status,
        job_id=tracker.job_id if record else None,
        config=config,
        sample_index=pd.Index(sample_index),
        n_computed=tracker.computed,
    )


def with_min_trades(constraints: Any, min_trades: int | None) -> Any:
    """``constraints`` plus "at least ``min_trades`` trades" (the stricter bound when both give one)."""
    if min_trades is None:
        return constraints
    if isinstance(min_trades, bool) or not isinstance(min_trades, int) or min_trades < 0:
        raise OptimizationError(f"min_trades must be a whole number >= 0, got {min_trades!r}",
                                hint="e.g. min_trades=30 (a trial with fewer trades is never the best)",
                                code="BAD_ARGUMENT", value=repr(min_trades))
    rule = constraints.get("n_trades") if isinstance(constraints, Mapping) else None
    if callable(constraints) or (rule is not None and rule[0] != ">="):
        def feasible(stats: dict[str, Any]) -> bool:
            met = constraints(stats) if callable(constraints) else is_feasible(stats, 0.0, constraints)
            return bool(met) and (stats.get("n_trades") or 0) >= min_trades

        return feasible
    merged = dict(constraints or {})
    merged["n_trades"] = (">=", max(min_trades, rule[1]) if rule is not None else min_trades)
    return merged


class _TrialLedger:
    """Counts a recorded job's evaluated trials in the store's trial ledger (docs/optimization.md "Trial
    ledger"), under the strategy's run label and the data's fingerprint, each with its full parameters
    (defaults and fixed values included, as a single backtest records them) and the job's settings."""

    def __init__(self, cls: type, fixed: dict[str, Any], fingerprint: str, settings: dict[str, Any],
                 store: Any) -> None:
        from qlm_kernel.workspace.runs import strategy_label

        self.store, self.fingerprint, self.settings = store, fingerprint, settings
        self.label = strategy_label(cls, cls)
        self.code = getattr(cls, "source_text", None)
        try:
            self.base = dict(cls(**fixed).params)
        except Exception:  # a strategy whose parameters have no defaults: the searched ones are the variant
            self.base = dict(fixed)

    def note(self, rows: list[dict[str, Any]]) -> None:
        """Note the ok rows just computed (errors produced nothing to select)."""
        from qlm_kernel.workspace.recording import note_trials

        variants = [{"params": {**self.base, **r["params"]}, "settings": self.settings}
                    for r in rows if r["status"] == "ok"]
        if self.store is not None and self.fingerprint and variants:
            note_trials(self.label, self.fingerprint, variants, source="optimize", code=self.code,
                        store=self.store)


def _data_file(data: Any, dataset_name: str | None) -> str | None:
    """The absolute path of a data file the job ran on (what a resume re-loads), else None."""
    if isinstance(data, (str, os.PathLike)) and dataset_name is None:
        return str(Path(data).expanduser().resolve())
    return None


def _strategy_class(strategy: Any) -> tuple[type, dict[str, Any]]:
    """The class (loaded once) and the fixed params of a given instance (overridden by the space)."""
    from qlm_kernel.strategy import Signals, Strategy, resolve_strategy

    if isinstance(strategy, Signals):
        raise OptimizationError(
            "ready-made Signals have no parameters to optimize",
            hint="pass a Strategy class, instance or file",
            code="BAD_STRATEGY",
        )
    if isinstance(strategy, type) and issubclass(strategy, Strategy):
        return strategy, {}
    inst = resolve_strategy(strategy)
    fixed = inst.params if isinstance(strategy, Strategy) else {}
    return type(inst), fixed


def _source_sha(cls: type) -> str | None:
    """sha256 of the strategy's code: the loader's hash for files, else of the class source."""
    sha = getattr(cls, "source_hash", None)
    if sha:
        return sha
    try:
        return hashlib.sha256(inspect.getsource(cls).encode("utf-8")).hexdigest()
    except (OSError, TypeError):
        return None


def _check_own_keywords(settings: Mapping[str, Any]) -> None:
    """An unknown keyword closest to one of optimize's own (``methd``) names that one; the others are
    checked as backtest settings."""
    own = [n for n, p in inspect.signature(optimize).parameters.items() if p.kind is p.KEYWORD_ONLY]
    for key in settings:
        near = closest(key, [*own, *SETTING_NAMES]) if key not in SETTING_NAMES else None
        if near in own:
            raise OptimizationError(
                f"unknown keyword {key!r}",
                hint=f"did you mean {near!r}? optimize takes {', '.join(own)} and backtest settings",
                code="UNKNOWN_KEYWORD",
                fixes=spelled(near, lead="write it as "),
                key=key,
                closest=near,
            )


def _stored_config(job_id: str) -> dict[str, Any]:
    from qlm_kernel.store import default_store

    job = default_store().get_job(job_id)
    if job is None or job.get("kind") != "optimize":
        raise OptimizationError(
            f"no optimization job {job_id!r} to resume",
            hint="a job id comes from optimize (its job_id) or the list of jobs",
            code="NOT_FOUND",
            fixes=JOB_LIST_FIXES,
            job_id=job_id,
        )
    return dict(job.get("config") or {})


def _check_same(stored: dict[str, Any], given: dict[str, Any], job_id: str) -> None:
    """Refuse to resume with a different strategy, data, space, method, objective or settings."""
    differ = [k for k in COMPARED if stored.get(k) != given.get(k)]
    fixed_differ = stored.get("fixed_params") != given.get("fixed_params")
    if fixed_differ:
        differ.append("fixed_params")
    if differ:
        detail = "; ".join(
            f"{k}: stored {_short(stored.get(k))} vs given {_short(given.get(k))}" for k in differ
        )
        raise OptimizationError(
            f"cannot resume job {job_id}: {', '.join(differ)} differ ({detail})",
            hint="resume with the same strategy file, data and options, or start a new optimization",
            code="RESUME_MISMATCH",
            job_id=job_id,
            differ=differ,
        )


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _as_error(exc: BaseException) -> Any:
    return exc.to_dict() if isinstance(exc, QLMError) else {"type": type(exc).__name__, "message": str(exc)}
