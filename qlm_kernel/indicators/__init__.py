"""Technical indicators for strategies: numba kernels behind thin Series/array wrappers.

Each function takes a pandas Series (result keeps its index and name) or a 1-D array (result is
an array) and returns float64 values with NaN warm-up, like pandas with ``min_periods=period``:
a rolling window that holds a NaN (or ±inf for sums) yields NaN.

Conventions (tested against pandas; see each docstring):

- ``ema``: pandas ``ewm(span=period, adjust=False, min_periods=period).mean()`` — alpha 2/(n+1),
  seeded with the first value, first output at bar ``period-1`` (same as ``vbt.MA(ewm=True)``).
- ``rsi`` and ``atr``: Wilder smoothing (alpha 1/n) seeded with a simple mean of the first ``n``
  values, as Wilder, TA-Lib and TradingView do.
- ``rolling_std`` and ``zscore``: ``ddof=1`` like pandas; ``bollinger``: ``ddof=0`` like TA-Lib
  and ``vbt.BBANDS``.
- ``roc``: percent, ``100*(x/x.shift(n) - 1)``.
- NaN inside the data: ``ema`` holds its value across NaNs like pandas (``ignore_na=False``;
  pandas 3.1 alone special-cases span=3 there); ``rsi``/``atr`` skip NaN bars (NaN out, state kept).

Memo: every function here is ``@memoized``. Inside ``memo.memo_scope()`` (the optimizer installs one
per job) a repeated call with the same inputs and arguments returns the cached, read-only result
instead of recomputing; outside a scope nothing is cached. Keys, the in-place-edit rule and the
bound are described in `qlm_kernel.indicators.memo`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from qlm_kernel.arrays import read_only
from qlm_kernel.errors import ConfigError
from qlm_kernel.indicators import _kernels as _k
from qlm_kernel.indicators._io import (
    as_float_array,
    check_number,
    check_period,
    check_same_index,
    check_same_length,
    wrap_like,
)
from qlm_kernel.indicators.memo import current_memo, memoized, offer

__all__ = [
    "MACD",
    "Bands",
    "Channel",
    "atr",
    "bollinger",
    "crossed_above",
    "crossed_below",
    "donchian",
    "ema",
    "highest",
    "lowest",
    "macd",
    "roc",
    "rolling_std",
    "rsi",
    "sma",
    "true_range",
    "wma",
    "zscore",
]

SeriesLike = Any  # a pd.Series or a 1-D array (kept loose: lists and nullable dtypes work too)


class Bands(NamedTuple):
    """Bollinger bands: middle (SMA), upper and lower band."""

    mid: SeriesLike
    upper: SeriesLike
    lower: SeriesLike


class MACD(NamedTuple):
    """MACD line (fast EMA - slow EMA), its signal EMA, and the histogram (line - signal)."""

    line: SeriesLike
    signal: SeriesLike
    hist: SeriesLike


class Channel(NamedTuple):
    """A price channel: rolling highest high (upper) and lowest low (lower)."""

    upper: SeriesLike
    lower: SeriesLike

    @property
    def mid(self) -> SeriesLike:
        """Middle of the channel."""
        return (self.upper + self.lower) / 2.0


@memoized
def sma(x: SeriesLike, period: int) -> SeriesLike:
    """Simple moving average == ``x.rolling(period).mean()``."""
    n = check_period(period, "sma")
    return wrap_like(x, _k.rolling_mean_nb(as_float_array(x, "sma"), n))


@memoized
def ema(x: SeriesLike, period: int) -> SeriesLike:
    """Exponential moving average == ``x.ewm(span=period, adjust=False, min_periods=period).mean()``."""
    n = check_period(period, "ema")
    return wrap_like(x, _k.ema_nb(as_float_array(x, "ema"), 2.0 / (n + 1.0), n))


@memoized
def wma(x: SeriesLike, period: int) -> SeriesLike:
    """Linearly weighted moving average, weights 1..period with the newest bar heaviest."""
    n = check_period(period, "wma")
    return wrap_like(x, _k.wma_nb(as_float_array(x, "wma"), n))


@memoized
def rolling_std(x: SeriesLike, period: int, ddof: int = 1) -> SeriesLike:
    """Rolling standard deviation == ``x.rolling(period).std(ddof=ddof)`` (pandas' ddof=1 default)."""
    n = check_period(period, "rolling_std")
    d = _check_ddof(ddof, "rolling_std")
    return wrap_like(x, _k.rolling_var_nb(as_float_array(x, "rolling_std"), n, d, True))


@memoized
def highest(x: SeriesLike, period: int) -> SeriesLike:
    """Rolling maximum over the last ``period`` bars, current bar included (``rolling(n).max()``)."""
    n = check_period(period, "highest")
    return wrap_like(x, _k.rolling_extreme_nb(as_float_array(x, "highest"), n, True))


@memoized
def lowest(x: SeriesLike, period: int) -> SeriesLike:
    """Rolling minimum over the last ``period`` bars, current bar included (``rolling(n).min()``)."""
    n = check_period(period, "lowest")
    return wrap_like(x, _k.rolling_extreme_nb(as_float_array(x, "lowest"), n, False))


@memoized
def rsi(x: SeriesLike, period: int = 14) -> SeriesLike:
    """Relative Strength Index (0..100) with Wilder smoothing.

    Average gain and loss start as the simple mean of the first ``period`` price changes and then
    follow ``avg = (avg*(period-1) + change)/period``; the first value is at bar ``period``. A flat
    market gives 50, no losses 100. Matches TA-Lib and TradingView ``ta.rsi``.
    """
    n = check_period(period, "rsi")
    return wrap_like(x, _k.rsi_nb(as_float_array(x, "rsi"), n))


@memoized
def true_range(high: SeriesLike, low: SeriesLike, close: SeriesLike) -> SeriesLike:
    """True range: max(high-low, |high-prev close|, |low-prev close|); the first bar is high-low."""
    h, lo, c = _hlc("true_range", high, low, close)
    return _wrap_first(_k.true_range_nb(h, lo, c), high, low, close)


@memoized
def atr(high: SeriesLike, low: SeriesLike, close: SeriesLike, period: int = 14) -> SeriesLike:
    """Average True Range with Wilder smoothing (RMA), like TradingView ``ta.atr``.

    Seed = mean of the first ``period`` true ranges (the first bar's TR is high-low), then
    ``atr = (atr*(period-1) + tr)/period``; the first value is at bar ``period-1``.
    """
    n = check_period(period, "atr")
    h, lo, c = _hlc("atr", high, low, close)
    return _wrap_first(_k.wilder_nb(_k.true_range_nb(h, lo, c), n), high, low, close)


@memoized
def bollinger(x: SeriesLike, period: int = 20, k: float = 2.0, ddof: int = 0) -> Bands:
    """Bollinger bands: SMA ± ``k`` rolling standard deviations (population, ``ddof=0``).

    Returns ``Bands(mid, upper, lower)``; matches ``vbt.BBANDS`` and TA-Lib.
    """
    n = check_period(period, "bollinger")
    mult = check_number(k, "bollinger", "k")
    d = _check_ddof(ddof, "bollinger")
    arr = as_float_array(x, "bollinger")
    mid = _k.rolling_mean_nb(arr, n)
    width = mult * _k.rolling_var_nb(arr, n, d, True)
    return Bands(wrap_like(x, mid), wrap_like(x, mid + width), wrap_like(x, mid - width))


@memoized
def macd(x: SeriesLike, fast: int = 12, slow: int = 26, signal: int = 9) -> MACD:
    """MACD: ``ema(fast) - ema(slow)``, its ``ema(signal)`` and the histogram, pandas-style EMAs.

    Returns ``MACD(line, signal, hist)``. ``fast >= slow`` is allowed (an optimizer may try it).
    """
    nf = check_period(fast, "macd", "fast")
    ns = check_period(slow, "macd", "slow")
    nsig = check_period(signal, "macd", "signal")
    arr = as_float_array(x, "macd")
    line = _k.ema_nb(arr, 2.0 / (nf + 1.0), nf) - _k.ema_nb(arr, 2.0 / (ns + 1.0), ns)
    sig = _k.ema_nb(read_only(line), 2.0 / (nsig + 1.0), nsig)  # the same compiled ema as for arr
    return MACD(wrap_like(x, line), wrap_like(x, sig), wrap_like(x, line - sig))


@memoized
def donchian(high: SeriesLike, low: SeriesLike, period: int = 20) -> Channel:
    """Donchian channel: ``Channel(upper=highest(high, period), lower=lowest(low, period))``.

    The current bar is included; for a breakout rule compare the close with the previous bar's
    channel (``.shift(1)``).
    """
    n = check_period(period, "donchian")
    h = as_float_array(high, "donchian", "high")
    lo = as_float_array(low, "donchian", "low")
    check_same_length("donchian", high=h, low=lo)
    check_same_index("donchian", high, low)
    return Channel(
        wrap_like(high, _k.rolling_extreme_nb(h, n, True)),
        wrap_like(low, _k.rolling_extreme_nb(lo, n, False)),
    )


@memoized
def zscore(x: SeriesLike, period: int, ddof: int = 1) -> SeriesLike:
    """Rolling z-score ``(x - sma) / rolling_std``; NaN where the window is flat (std 0)."""
    n = check_period(period, "zscore")
    d = _check_ddof(ddof, "zscore")
    arr = as_float_array(x, "zscore")
    out = _k.zscore_nb(arr, _k.rolling_mean_nb(arr, n), _k.rolling_var_nb(arr, n, d, True))
    return wrap_like(x, out)


@memoized
def roc(x: SeriesLike, period: int = 10) -> SeriesLike:
    """Rate of change in percent: ``100 * (x / x.shift(period) - 1)``."""
    n = check_period(period, "roc")
    return wrap_like(x, _k.roc_nb(as_float_array(x, "roc"), n))


@memoized
def crossed_above(a: SeriesLike, b: SeriesLike | float) -> SeriesLike:
    """True on bars where ``a`` moves from ``<= b`` (previous bar) to ``> b`` (this bar).

    ``b`` may be a number. A bar where any of the four values is NaN is never a crossing.
    Returns a bool Series (index of the Series input) or a bool array.
    """
    return _cross(a, b, True, "crossed_above")


@memoized
def crossed_below(a: SeriesLike, b: SeriesLike | float) -> SeriesLike:
    """True on bars where ``a`` moves from ``>= b`` (previous bar) to ``< b`` (this bar)."""
    return _cross(a, b, False, "crossed_below")


def _cross(a: Any, b: Any, above: bool, name: str) -> Any:
    if _is_scalar(a) and not _is_scalar(b):  # crossed_above(50, x) == crossed_below(x, 50)
        a, b, above = b, a, not above
    aa = as_float_array(a, name, "a")
    if _is_scalar(b):
        out = _k.cross_scalar_nb(aa, _level(b, name), above)
    else:
        bb = as_float_array(b, name, "b")
        check_same_length(name, a=aa, b=bb)
        check_same_index(name, a, b)
        if current_memo() is None:
            out = _k.cross_nb(aa, bb, above)
        else:  # in an optimizer job: one pass gives both directions; the other waits in the memo
            up, down = _k.cross_both_nb(aa, bb)
            out, other = (up, down) if above else (down, up)
            offer(crossed_below if above else crossed_above, (a, b), _like(other, a, b))
    return _like(out, a, b)


def _like(out: np.ndarray, a: Any, b: Any) -> Any:
    """``out`` as a Series on the index of the Series input (``a`` first), else the array."""
    template = a if isinstance(a, pd.Series) else b
    if isinstance(template, pd.Series):
        return pd.Series(out, index=template.index, copy=False)
    return out


def _is_scalar(value: Any) -> bool:
    return np.ndim(value) == 0 and not isinstance(value, (pd.Series, np.ndarray))


def _level(value: Any, name: str) -> float:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)  # NaN is allowed: it never crosses
    raise ConfigError(
        f"{name}() b must be a Series, an array or a number, got {type(value).__name__}",
        hint=f"pass a level such as {name}(rsi, 30) or a second series",
        indicator=name,
        argument="b",
        value=repr(value),
    )


def _check_ddof(ddof: Any, indicator: str) -> int:
    if isinstance(ddof, (int, np.integer)) and not isinstance(ddof, bool) and ddof >= 0:
        return int(ddof)
    raise ConfigError(
        f"{indicator}() ddof must be an integer >= 0, got {ddof!r}",
        hint="use ddof=0 (population) or ddof=1 (sample)",
        indicator=indicator,
        argument="ddof",
        value=repr(ddof),
    )


def _hlc(name: str, high: Any, low: Any, close: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h = as_float_array(high, name, "high")
    lo = as_float_array(low, name, "low")
    c = as_float_array(close, name, "close")
    check_same_length(name, high=h, low=lo, close=c)
    check_same_index(name, high, low, close)
    return h, lo, c


def _wrap_first(values: np.ndarray, *inputs: Any) -> Any:
    """``values`` as a Series on the index of the first Series input, else the bare array."""
    for x in inputs:
        if isinstance(x, pd.Series):
            return pd.Series(values, index=x.index, copy=False)
    return values
