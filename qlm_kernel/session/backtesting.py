"""`qlm.backtest`: one recorded backtest, as every front end starts it (through one `RunSpec`)."""

from __future__ import annotations

from typing import Any

from qlm_kernel.engine import BacktestResult
from qlm_kernel.session.limits import USER, Limits
from qlm_kernel.session.spec import RunSpec
from qlm_kernel.workspace.runs import recorded_backtest


def backtest(strategy: Any, data: Any = None, *, isolate: bool = False, time_limit: float | None = None,
             **kwargs: Any) -> BacktestResult:
    """Backtest ``strategy`` on ``data`` (frame, file, dataset name) or ``dataset=`` / ``sample=``.

    Keywords (`RunSpec.from_kwargs`): ``dataset``, ``sample``, ``record``, ``source``, backtest settings
    (fill, fees, fixed_fees, slippage, init_cash, size, size_type, integer, direction, sl_stop, tp_stop,
    tsl_stop, close_at_end) and strategy parameters. The run is published on the event bus
    (``engine.backtest.started|finished|failed``) and, unless ``record=False`` (or
    ``QLM_RECORD_RUNS=0``), recorded in the workspace store with its strategy version, data fingerprint,
    params, settings, stats or error; ``res.meta["run_id"]`` is its id.

    ``isolate=True`` runs it in a worker process (`qlm_kernel.session.isolate`), killed after
    ``time_limit`` seconds (default 600) with a TIMEOUT StrategyError; the strategy must be a file.
    """
    if isolate:
        from qlm_kernel.session.isolate import run_in_worker

        return run_in_worker("qlm_kernel.session.backtesting:backtest", strategy, {"data": data, **kwargs},
                             time_limit)
    from qlm_kernel.strategy import time_limit_scope

    with time_limit_scope(time_limit):  # None: no limit, strategy code runs inline
        return run_backtest(RunSpec.from_kwargs(strategy, data, **kwargs))


def run_backtest(spec: RunSpec, limits: Limits = USER) -> BacktestResult:
    """Run one `RunSpec`: resolve its data (with ``limits``), backtest, publish and record."""
    frame, dataset_name = spec.data.resolve(limits)
    return recorded_backtest(
        spec.strategy,
        frame,
        params=spec.params,
        settings=spec.settings,
        dataset=dataset_name,
        record=spec.record,
        source=spec.source,
        data_source=spec.data.describe(),
    )
