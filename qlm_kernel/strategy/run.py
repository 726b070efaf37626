"""Run a strategy through the engine: resolve it, compute its signals, simulate, wrap the result.

This is the pure, unrecorded backtest (no store, no bus); `qlm.backtest` adds recording and events on
top (`qlm_kernel.workspace.runs`). `signal_arrays` is the one translation from a strategy's `Signals`
to the kernel's arrays, shared by the backtest, the optimizer's trials and the paper runner.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.engine.api import as_ohlcv_frame, simulate
from qlm_kernel.engine.result import BacktestResult
from qlm_kernel.engine.settings import BacktestSettings, split_settings
from qlm_kernel.strategy.compute import compute_signals
from qlm_kernel.strategy.loader import resolve_strategy

_NAN1 = np.array([np.nan])
_NAN1.setflags(write=False)


def ohlcv_frame(data: Any) -> pd.DataFrame:
    """The OHLCV frame to run on: a frame is checked cheaply; a CSV/Parquet path is loaded and validated."""
    if isinstance(data, (str, os.PathLike)):
        from qlm_kernel.data import load_ohlcv

        return load_ohlcv(data)
    return as_ohlcv_frame(data)


def backtest(strategy: Any, data: Any, **kwargs: Any) -> BacktestResult:
    """Backtest ``strategy`` on ``data``; keyword arguments are settings or strategy parameters.

    ``strategy``: a Strategy subclass or instance, a path or name of a strategy file, or
    ``Signals``. ``data``: an OHLCV DataFrame (as from ``load_ohlcv``/``sample_data``) or a path
    to a CSV/Parquet file. Settings (see `BacktestSettings`): fill, fees, fixed_fees, slippage,
    init_cash, size, size_type, integer, direction, sl_stop, tp_stop, tsl_stop, close_at_end;
    every other keyword is a strategy parameter. Raises `StrategyError`, `DataError` or
    `ConfigError` with the details needed to fix the input.
    """
    started = time.perf_counter()
    settings, params = split_settings(kwargs)
    frame = ohlcv_frame(data)
    strat = resolve_strategy(strategy, **params)
    el, xl, es, xs, sl_a, tp_a, tsl_a = signal_arrays(strat, frame, settings)
    equity, trades, acc = simulate(frame, el, xl, es, xs, sl_a, tp_a, tsl_a, settings)
    return BacktestResult(
        data=frame,
        settings=settings,
        params=strat.params,
        strategy_name=type(strat).name if hasattr(type(strat), "name") else type(strat).__name__,
        equity=equity,
        trade_records=trades,
        accumulators=acc,
        meta={
            "duration_s": time.perf_counter() - started,
            "source_file": getattr(type(strat), "source_file", None),
            "source_hash": getattr(type(strat), "source_hash", None),
            "synthetic": bool(frame.attrs.get("synthetic", False)),
        },
    )


def signal_arrays(strat: Any, frame: pd.DataFrame, settings: BacktestSettings) -> tuple[np.ndarray, ...]:
    """(entry_long, exit_long, entry_short, exit_short, sl, tp, tsl) arrays of ``strat`` on ``frame``:
    per-bar stops from the Signals where given, else the settings' stop as a length-1 array."""
    signals = compute_signals(strat, frame)
    n = len(frame)
    el, xl, es, xs = signals.to_arrays(n, frame.index)
    sl_a, tp_a, tsl_a = signals.stop_arrays(n, frame.index)
    sl_a = sl_a if signals.sl_stop is not None else scalar_stop(settings.sl_stop)
    tp_a = tp_a if signals.tp_stop is not None else scalar_stop(settings.tp_stop)
    tsl_a = tsl_a if signals.tsl_stop is not None else scalar_stop(settings.tsl_stop)
    return el, xl, es, xs, sl_a, tp_a, tsl_a


def scalar_stop(value: float | None) -> np.ndarray:
    """A settings stop as the kernels' length-1 stop array (NaN = no stop)."""
    return _NAN1 if value is None else np.array([float(value)])
