"""The engine's Python edge: check a frame, hand its price arrays and signal arrays to the kernel."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.engine import layout as L
from qlm_kernel.engine.kernels import run_column_lazy
from qlm_kernel.engine.settings import BacktestSettings
from qlm_kernel.errors import DataError

PRICE_COLUMNS = ("open", "high", "low", "close")


def simulate(
    frame: pd.DataFrame,
    el: np.ndarray,
    xl: np.ndarray,
    es: np.ndarray,
    xs: np.ndarray,
    sl_a: np.ndarray,
    tp_a: np.ndarray,
    tsl_a: np.ndarray,
    settings: BacktestSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the kernel on validated arrays: (equity per bar, trade records, accumulators)."""
    o, h, lo, c = price_arrays(frame)
    n = len(c)
    capacity = int(np.count_nonzero(el)) + int(np.count_nonzero(es)) + 1
    equity = np.empty(n)
    trades = np.empty((capacity, L.N_TRADE_FIELDS))
    acc = np.empty(L.N_STATS)
    k = run_column_lazy(o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, settings.pack(), equity, trades, acc)
    bad = int(acc[L.ST_BAD_PRICE_BAR])
    if bad >= 0:
        column = "close" if not c[bad] > 0 else "open"
        value = frame[column].iloc[bad]
        raise DataError(
            f"price {column}={value!r} at row {bad + 1} ({frame.index[bad]}) is not a positive number",
            hint="load data with qlm.load_ohlcv() (it rejects such rows) or drop/fill the bad rows",
            code="DATA_BAD_PRICE",
            row=bad + 1,
            column=column,
            value=str(value),
        )
    return equity, trades[:k], acc


def as_ohlcv_frame(data: Any) -> pd.DataFrame:
    """The OHLCV DataFrame to run on, checked cheaply (loading files is the data layer's job)."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(
            f"data must be an OHLCV DataFrame, got {type(data).__name__}",
            hint="use qlm.load_ohlcv('prices.csv') or qlm.sample_data('synthetic')",
            code="DATA_BAD_INPUT",
        )
    if not isinstance(data.index, pd.DatetimeIndex):
        raise DataError(
            f"data needs a DatetimeIndex, got {type(data.index).__name__}",
            hint="use qlm.validate_ohlcv(df) or set the timestamps as the index (df.set_index('time'))",
            code="DATA_BAD_INDEX",
        )
    missing = [col for col in PRICE_COLUMNS if col not in data.columns]
    if missing:
        raise DataError(
            f"data is missing column(s) {missing}; it has {list(map(str, data.columns))}",
            hint="columns must be lower-case open, high, low, close(, volume); "
            "qlm.validate_ohlcv(df) maps headers like 'Close' or 'Adj Close'",
            code="DATA_MISSING_COLUMN",
            column=missing[0],
        )
    dtypes = data.dtypes
    for col in PRICE_COLUMNS:
        if dtypes[col] != np.float64:
            raise DataError(
                f"column {col!r} has dtype {dtypes[col]}, expected float64",
                hint=f"use qlm.validate_ohlcv(df), or df.astype({{{col!r}: 'float64'}}) if values are right",
                code="DATA_BAD_DTYPE",
                column=col,
            )
    if len(data) == 0:
        raise DataError("data has no rows", hint="load a non-empty dataset", code="DATA_EMPTY")
    if not data.index.is_monotonic_increasing:
        raise DataError(
            "data's timestamps are not in increasing order",
            hint="sort with df.sort_index(), or load through qlm.load_ohlcv(..., repair=True)",
            code="DATA_NOT_SORTED",
        )
    return data


def price_arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """open, high, low, close as float64 arrays: zero-copy views of the frame's single float block.

    (Per-column access deep-copies ``attrs`` on every call, ~30 us each; ``to_numpy`` on an
    all-float64 frame is a 2 us view.)
    """
    if all(dtype == np.float64 for dtype in frame.dtypes):
        values = frame.to_numpy()
        cols = frame.columns
        return tuple(values[:, cols.get_loc(col)] for col in PRICE_COLUMNS)  # type: ignore[return-value]
    return tuple(frame[col].to_numpy(dtype=np.float64) for col in PRICE_COLUMNS)  # type: ignore[return-value]
