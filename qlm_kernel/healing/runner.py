"""Run the strategy once for the heal loop: a backtest under the time limit, its trace if it fails.

A run "passes" when the backtest completes and (with ``require_trades``) trades at least once; a run
without trades gets the warning-level `diagnose_no_trades` trace instead (an all-NaN indicator is
the usual cause), which the loop treats like a failure to repair.

Whatever strategy code raises, of any exception class (see `qlm_kernel.healing.guard`), ends as a
failed outcome with a `StrategyError` trace; only the user's interrupt and errors that are not the
strategy's (the heal machinery, the environment) leave `run_once`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from qlm_kernel.engine.settings import partition_settings
from qlm_kernel.errors import QLMError
from qlm_kernel.formatting import HEADLINE_STATS
from qlm_kernel.healing.guard import strategy_failure
from qlm_kernel.healing.target import HealTarget
from qlm_kernel.strategy import diagnose_no_trades, resolve_strategy, time_limit_scope


@dataclass(frozen=True)
class RunOutcome:
    """One run: ``passed``; ``trace`` (an error's ``to_dict()``, None when passed); ``stats`` (headline
    statistics when the backtest completed); ``run_id`` when recorded."""

    passed: bool
    trace: dict[str, Any] | None
    stats: dict[str, Any] | None
    run_id: int | None
    duration_s: float


def run_once(target: HealTarget, frame: pd.DataFrame, dataset: str | None, kwargs: dict[str, Any], *,
             version: dict[str, Any], time_limit: float | None, require_trades: bool, record: bool | None,
             source: str) -> RunOutcome:
    """Backtest the target file on ``frame`` with ``kwargs`` (params and settings) under the limit."""
    from qlm_kernel.workspace import recorded_backtest as backtest

    settings, params = partition_settings(kwargs)
    started = time.perf_counter()
    with time_limit_scope(time_limit):
        try:
            result = backtest(str(target.path), frame, params=params, settings=settings, dataset=dataset,
                              record=record, source=source)
        except QLMError as err:
            return RunOutcome(False, _trace(err, version), None, err.context.get("run_id"),
                              time.perf_counter() - started)
        except BaseException as exc:  # raised by strategy code past its wrapping (any class), or not ours
            err = _strategy_failure(exc, target)
            return RunOutcome(False, _trace(err, version), None, None, time.perf_counter() - started)
        stats = {k: _plain(result.stats.get(k)) for k in HEADLINE_STATS}
        run_id = result.meta.get("run_id")
        if not require_trades or stats["n_trades"]:
            return RunOutcome(True, None, stats, run_id, time.perf_counter() - started)
        try:
            warning = diagnose_no_trades(resolve_strategy(str(target.path), **params), frame)
        except QLMError as err:  # the re-run itself failed (an error, a timeout): report that
            warning = err
        except BaseException as exc:
            warning = _strategy_failure(exc, target)
    return RunOutcome(False, _trace(warning, version), stats, run_id, time.perf_counter() - started)


def _strategy_failure(exc: BaseException, target: HealTarget) -> QLMError:
    """The strategy's error for ``exc``; re-raises what is not the strategy's (see the module doc)."""
    err = strategy_failure(exc, target.path)
    if err is None:
        raise exc
    err.__cause__ = exc
    return err


def _trace(err: QLMError, version: dict[str, Any]) -> dict[str, Any]:
    """The error's JSON record, with the strategy version that ran."""
    err.context.setdefault("strategy_version_id", version.get("id"))
    err.context.setdefault("strategy_version", version.get("version"))
    err.context.setdefault("severity", "error")
    return err.to_dict()


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
