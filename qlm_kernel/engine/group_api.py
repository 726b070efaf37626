"""The grouped engine's Python edge: wide (bars x symbols) arrays of a `Universe` and the signal
arrays in, the grouped kernel run, a bad price reported by symbol."""

from __future__ import annotations

from typing import Any

import numpy as np

from qlm_kernel.arrays import read_only
from qlm_kernel.engine import layout as L
from qlm_kernel.engine.group_kernels import GX_BAD_COLUMN, GX_EXPOSURE_BARS, N_GX, simulate_group
from qlm_kernel.engine.group_signals import encode_signals
from qlm_kernel.engine.kernels import column_mode, finish_trades
from qlm_kernel.engine.settings import BacktestSettings
from qlm_kernel.engine.weight_kernels import N_ORDER_FIELDS, exit_trades, simulate_weights
from qlm_kernel.errors import DataError


def simulate_universe(
    universe: Any,
    el: np.ndarray,
    xl: np.ndarray,
    es: np.ndarray | None,
    xs: np.ndarray | None,
    sl_a: np.ndarray,
    tp_a: np.ndarray,
    tsl_a: np.ndarray,
    settings: BacktestSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the grouped kernel on a universe's arrays: (equity, trade records in order of entry bar then
    symbol, trade columns, accumulators). Signals are (bars x symbols) bool in any memory order (a
    frame's Fortran order is read without a copy; ``None`` short fields = none); stops (bars or 1) x
    (symbols or 1) float."""
    n = universe.close.shape[0]
    cfg = settings.pack()
    codes, words, entries, short_entries = encode_signals(el, xl, es, xs)
    fill_close, intrabar, close_at_end = column_mode(
        cfg, sl_a.ravel(), tp_a.ravel(), tsl_a.ravel(), np.array([short_entries > 0])
    )
    equity = np.empty(n)
    trades = np.empty((entries + 1, L.N_TRADE_FIELDS))
    trade_col = np.empty(entries + 1, dtype=np.int64)
    acc = np.empty(L.N_STATS)
    extra = np.zeros(N_GX)
    k = simulate_group(
        universe.open, universe.high, universe.low, universe.close, universe.valuation_close,
        universe.has_bar, codes, words, read_only(sl_a), read_only(tp_a), read_only(tsl_a), cfg, equity,
        trades, trade_col, acc, extra,
        fill_close, intrabar, close_at_end,
    )
    _raise_bad_price(universe, acc, extra)
    finish_trades(trades, k, acc, n)
    acc[L.ST_EXPOSURE_BARS] = extra[GX_EXPOSURE_BARS]  # bars with any position, not summed over symbols
    return equity, trades[:k], trade_col[:k], acc


def rebalance_universe(
    universe: Any, weights: np.ndarray, drift: float | None, settings: BacktestSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run target-weight rebalancing on a universe's arrays: (equity, trade records, trade columns,
    accumulators, order records). ``weights`` is (bars x symbols) float, NaN = no target that bar."""
    n, m = universe.close.shape
    cfg = settings.pack()
    capacity = int(np.count_nonzero(~np.isnan(weights))) + m + 1
    if drift is not None:
        capacity += int(np.count_nonzero(universe.has_bar))
    equity = np.empty(n)
    orders = np.empty((capacity, N_ORDER_FIELDS))
    acc = np.empty(L.N_STATS)
    extra = np.zeros(N_GX)
    q = simulate_weights(
        universe.open, universe.high, universe.low, universe.close, universe.valuation_close,
        universe.has_bar, read_only(weights),
        np.nan if drift is None else float(drift), cfg, settings.fill == "close", equity, orders, acc, extra,
    )
    _raise_bad_price(universe, acc, extra)
    orders = orders[:q]
    trades = np.empty((q + m, L.N_TRADE_FIELDS))
    trade_col = np.empty(q + m, dtype=np.int64)
    last = universe.valuation_close[-1] if n else np.zeros(m)
    k = exit_trades(orders, m, np.ascontiguousarray(last), trades, trade_col)
    finish_trades(trades, k, acc, n)
    acc[L.ST_N_TRADES] = k
    acc[L.ST_N_ORDERS] = q
    acc[L.ST_EXPOSURE_BARS] = extra[GX_EXPOSURE_BARS]
    order = _by_entry_then_symbol(trades[:k], trade_col[:k], m)
    return equity, trades[:k][order], trade_col[:k][order], acc, orders


def _by_entry_then_symbol(trades: np.ndarray, cols: np.ndarray, m: int) -> np.ndarray:
    """The order of trade rows by entry bar, then symbol (one integer key: ~5x a two-key lexsort)."""
    key = trades[:, L.TR_ENTRY_BAR].astype(np.int64) * m + cols
    return np.argsort(key, kind="stable")


def _raise_bad_price(universe: Any, acc: np.ndarray, extra: np.ndarray) -> None:
    """A `DataError` naming the symbol, time and column of the first bad price the kernel met."""
    bad = int(acc[L.ST_BAD_PRICE_BAR])
    if bad >= 0:
        col = int(extra[GX_BAD_COLUMN])
        symbol = universe.symbols[col]
        column = "close" if not universe.close[bad, col] > 0 else "open"
        value = getattr(universe, column)[bad, col]
        raise DataError(
            f"price {column}={value!r} of {symbol!r} at {universe.index[bad]} is not a positive number",
            hint="load the universe with qlm.load_universe() (it validates every symbol) or fix that row",
            code="DATA_BAD_PRICE",
            symbol=symbol,
            column=column,
            value=str(value),
        )
