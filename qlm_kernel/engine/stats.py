"""Turn the kernels' per-column accumulators into named statistics (vectorized over columns).

docs/concepts.md "Statistics" states every formula; in short:

- **One returns series.** ``r[i] = equity[i] / equity[i-1] - 1`` for every bar, the first against the
  initial cash (so a fee paid on bar 0 is a return): ``n`` returns for ``n`` bars -- exactly
  `BacktestResult.returns` (`bar_returns`). A return is undefined (NaN) where the previous equity is
  not positive (ruin), and after a liquidation (the account is closed: its flat bars are not returns).
  The ratios use the defined returns only, so ``empyrical.sharpe_ratio(res.returns,
  annualization=res.stats["bars_per_year"])`` is ``res.stats["sharpe"]``.
- ``bars_per_year`` comes from the data itself: (n - 1) bar intervals over the calendar span in years
  of 365.25 days (daily stock data ~252, 24/7 hourly data ~8766).
- ``volatility`` = std(r, ddof=1) x sqrt(bars_per_year); ``sharpe`` = mean(r) / std(r, ddof=1) x
  sqrt(bars_per_year), zero risk-free rate; ``sortino`` = mean(r) / sqrt(mean(min(r, 0)^2)) x
  sqrt(bars_per_year) (empyrical's downside risk with required return 0).
- ``cagr`` = (final / initial) ^ (1 / years) - 1 over the calendar span (first to last timestamp), -100%
  when nothing (or a debt) is left; empyrical's ``cagr`` counts n returns as n periods, one bar longer.
- ``max_drawdown`` = min(equity / running peak - 1), the peak starting at the initial cash (as
  empyrical; vectorbt starts at the first bar's value), floored at -100% (a debt is stated by
  ``total_return`` and the NEGATIVE_EQUITY warning); ``calmar`` = cagr / |max_drawdown|.
- Zero denominators: fewer than two returns or a zero std -> volatility/sharpe NaN (no trades: all
  returns 0, volatility 0, sharpe NaN); no losing bar -> sortino +inf if the mean is positive, NaN if
  it is 0 (as empyrical); no drawdown -> calmar NaN; no closed trade -> win rate, average trade,
  expectancy, best/worst trade NaN; no losing trade -> profit factor +inf (NaN without any profit).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlm_kernel.engine import layout as L

SECONDS_PER_YEAR = 365.25 * 86_400.0

STAT_KEYS = (
    "start",
    "end",
    "bars",
    "init_cash",
    "final_value",
    "total_return",
    "benchmark_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_bars",
    "liquidated",
    "n_trades",
    "n_closed",
    "n_long",
    "n_short",
    "win_rate",
    "profit_factor",
    "avg_trade_return",
    "best_trade",
    "worst_trade",
    "expectancy",
    "exposure",
    "fees_paid",
    "n_orders",
    "rejected_orders",
    "bars_per_year",
)


def span_years(index: pd.DatetimeIndex) -> float:
    """Calendar span of the index in years (0 for fewer than two bars)."""
    if len(index) < 2:
        return 0.0
    return (index[-1] - index[0]).total_seconds() / SECONDS_PER_YEAR


def bars_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per calendar year observed in the data: the annualization factor."""
    years = span_years(index)
    return (len(index) - 1) / years if years > 0 else np.nan


def drawdown(equity: np.ndarray, init_cash: float) -> np.ndarray:
    """Equity / running peak - 1 at every bar; the peak starts at the initial cash (0 at new highs);
    floored at -1 (a debt, equity below zero, is a 100% drawdown: the loss beyond is total_return's)."""
    eq = np.asarray(equity, dtype=float)
    return np.maximum(eq / np.maximum.accumulate(np.maximum(eq, init_cash)) - 1.0, -1.0)


def bar_returns(equity: np.ndarray, init_cash: float, n_r: int | None = None) -> np.ndarray:
    """The per-bar simple returns the statistics use: ``equity[i] / equity[i-1] - 1``, the first bar
    against ``init_cash``; NaN where the previous equity is not positive (a ruined account has no
    return). ``n_r`` (the kernels' ``ST_N_R``): only the first ``n_r`` defined returns count, later
    ones are NaN (after a liquidation the account is closed)."""
    eq = np.asarray(equity, dtype=float)
    prev = np.concatenate(([float(init_cash)], eq[:-1]))
    out = np.full(len(eq), np.nan)
    np.divide(eq, prev, out=out, where=prev > 0)
    out -= 1.0
    if n_r is not None:
        defined = ~np.isnan(out)
        out[defined & (np.cumsum(defined) > n_r)] = np.nan
    return out


def return_moments(
    n_r: np.ndarray | float,
    sum_r: np.ndarray | float,
    sum_r2: np.ndarray | float,
    sum_down2: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, standard deviation with ddof=1, downside deviation sqrt(mean(min(r, 0)^2))) of per-bar
    returns from their count, sum, sum of squares and sum of squared negative returns (the kernels'
    accumulators); NaN where there are too few returns."""
    with np.errstate(divide="ignore", invalid="ignore"):
        n_r = np.asarray(n_r, dtype=float)
        mean_r = np.asarray(sum_r, dtype=float) / n_r
        var_r = (np.asarray(sum_r2, dtype=float) - n_r * mean_r**2) / (n_r - 1)
        std_r = np.sqrt(np.maximum(var_r, 0.0))
        down = np.sqrt(np.asarray(sum_down2, dtype=float) / n_r)
    return mean_r, std_r, down


def ratios(
    mean_r: np.ndarray | float,
    std_r: np.ndarray | float,
    down: np.ndarray | float,
    growth: np.ndarray | float,
    years: float,
    max_dd: np.ndarray | float,
    bpy: float,
) -> dict[str, np.ndarray]:
    """``volatility``, ``sharpe``, ``sortino``, ``cagr`` and ``calmar`` (arrays, vectorized over columns)
    from the per-bar return moments (`return_moments`), final / initial equity (``growth``), the span in
    years, the maximum drawdown (negative) and the bars per year. The one place these are defined: the
    engine's stats and the tearsheet's buy & hold column both come from here."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mean_r, std_r, down = (np.asarray(x, dtype=float) for x in (mean_r, std_r, down))
        growth, max_dd = np.asarray(growth, dtype=float), np.asarray(max_dd, dtype=float)
        ann = np.sqrt(bpy)
        cagr = np.where(growth > 0, growth ** (1.0 / years) - 1.0, -1.0) if years > 0 else np.nan * growth
        return {
            "volatility": std_r * ann,
            "sharpe": np.where(std_r > 0, mean_r / std_r * ann, np.nan),
            # no losing bar: +inf for a positive mean, NaN for a zero one (as empyrical)
            "sortino": np.where(down > 0, mean_r / down * ann, np.where(mean_r > 0, np.inf, np.nan)),
            "cagr": cagr,
            "calmar": np.where(max_dd < 0, cagr / np.abs(max_dd), np.nan),
        }


def summarize(
    acc: np.ndarray, init_cash: np.ndarray | float, index: pd.DatetimeIndex, close: np.ndarray
) -> dict[str, np.ndarray]:
    """Named statistics for each row of ``acc`` (columns x N_STATS) as arrays of length columns."""
    acc = np.atleast_2d(acc)
    init = np.broadcast_to(np.asarray(init_cash, dtype=float), acc.shape[:1])
    n_bars = len(index)
    bpy = bars_per_year(index)
    years = span_years(index)
    final = acc[:, L.ST_FINAL_VALUE]
    max_dd = acc[:, L.ST_MAX_DD]
    moments = return_moments(
        acc[:, L.ST_N_R], acc[:, L.ST_SUM_R], acc[:, L.ST_SUM_R2], acc[:, L.ST_SUM_DOWN2]
    )
    rat = ratios(*moments, final / init, years, max_dd, bpy)
    with np.errstate(divide="ignore", invalid="ignore"):
        closed = acc[:, L.ST_N_CLOSED]
        gp = acc[:, L.ST_GROSS_PROFIT]
        gl = acc[:, L.ST_GROSS_LOSS]
        profit_factor = np.where(gl > 0, gp / gl, np.where(gp > 0, np.inf, np.nan))
        win_rate = np.where(closed > 0, acc[:, L.ST_N_WINS] / closed, np.nan)
        avg_ret = np.where(closed > 0, acc[:, L.ST_SUM_TRADE_RET] / closed, np.nan)
        expectancy = np.where(closed > 0, (gp - gl) / closed, np.nan)
    benchmark = close[-1] / close[0] - 1.0 if n_bars else np.nan
    m = acc.shape[0]
    return {
        "start": np.full(m, index[0] if n_bars else pd.NaT, dtype=object),
        "end": np.full(m, index[-1] if n_bars else pd.NaT, dtype=object),
        "bars": np.full(m, n_bars),
        "init_cash": init.astype(float),
        "final_value": final,
        "total_return": final / init - 1.0,
        "benchmark_return": np.full(m, benchmark),
        "cagr": rat["cagr"],
        "volatility": rat["volatility"],
        "sharpe": rat["sharpe"],
        "sortino": rat["sortino"],
        "calmar": rat["calmar"],
        "max_drawdown": max_dd,
        "max_drawdown_bars": acc[:, L.ST_MAX_DD_BARS].astype(np.int64),
        "liquidated": acc[:, L.ST_LIQUIDATION_BAR] >= 0,
        "n_trades": acc[:, L.ST_N_TRADES].astype(np.int64),
        "n_closed": closed.astype(np.int64),
        "n_long": acc[:, L.ST_N_LONG].astype(np.int64),
        "n_short": acc[:, L.ST_N_SHORT].astype(np.int64),
        "win_rate": win_rate,
        "profit_factor": profit_factor,
        "avg_trade_return": avg_ret,
        "best_trade": acc[:, L.ST_BEST_TRADE],
        "worst_trade": acc[:, L.ST_WORST_TRADE],
        "expectancy": expectancy,
        "exposure": acc[:, L.ST_EXPOSURE_BARS] / n_bars if n_bars else np.full(m, np.nan),
        "fees_paid": acc[:, L.ST_FEES],
        "n_orders": acc[:, L.ST_N_ORDERS].astype(np.int64),
        "rejected_orders": acc[:, L.ST_N_REJECTED].astype(np.int64),
        "bars_per_year": np.full(m, bpy),
    }


_STAT_INDEX = pd.Index(STAT_KEYS)


def stats_series(acc: np.ndarray, init_cash: float, index: pd.DatetimeIndex, close: np.ndarray) -> pd.Series:
    """Statistics of one column as a pandas Series (object dtype: timestamps, ints and floats)."""
    table = summarize(acc, init_cash, index, close)
    values = np.empty(len(STAT_KEYS), dtype=object)
    values[:] = [_scalar(table[key][0]) for key in STAT_KEYS]
    return pd.Series(values, index=_STAT_INDEX, name="stats", copy=False)


def stats_frame(
    acc: np.ndarray, init_cash: np.ndarray | float, index: pd.DatetimeIndex, close: np.ndarray
) -> pd.DataFrame:
    """Statistics of many columns (a parameter sweep) as a DataFrame, one row per column."""
    table = summarize(acc, init_cash, index, close)
    return pd.DataFrame({key: table[key] for key in STAT_KEYS if key not in ("start", "end")})


def _scalar(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return value
