"""Series a tearsheet derives from a result: buy & hold, performance numbers, calendar returns,
rolling risk, exposure and histograms (numpy/pandas only; the charts and tables read these)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qlm_kernel.engine.stats import (
    bar_returns,
    bars_per_year,
    drawdown,
    ratios,
    return_moments,
    span_years,
)

if TYPE_CHECKING:
    from qlm_kernel.engine.result import BacktestResult

PERF_KEYS = (
    "final_value",
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
)
"""Statistics a tearsheet shows for the strategy and for buy & hold side by side."""


def benchmark_equity(close: np.ndarray, init_cash: float) -> np.ndarray:
    """Buy & hold equity: the initial cash invested at the first close, no costs, marked to each close."""
    close = np.asarray(close, dtype=float)
    return init_cash * close / close[0]


def perf_stats(
    equity: np.ndarray, init_cash: float, index: pd.DatetimeIndex, *, returns_end: int | None = None
) -> dict[str, float]:
    """`PERF_KEYS` of an equity curve, computed as the engine computes its own stats: the same
    per-bar returns (`stats.bar_returns`: every bar, the first against the initial cash; none where
    the previous equity is not positive) feed the same `stats.return_moments` and `stats.ratios`, so
    the numbers agree by construction.

    ``returns_end``: the last bar whose return counts (a liquidated run's returns end at the
    liquidation bar, `liquidation_bar`); final value, CAGR and drawdown still use the whole curve.
    """
    eq = np.asarray(equity, dtype=float)
    r = bar_returns(eq, init_cash)
    if returns_end is not None:
        r = r[: max(returns_end + 1, 0)]
    r = r[~np.isnan(r)]
    moments = return_moments(len(r), r.sum(), np.sum(r * r), np.sum(np.minimum(r, 0.0) ** 2))
    growth = eq[-1] / init_cash
    max_dd = float(drawdown(eq, init_cash).min())
    rat = ratios(*moments, growth, span_years(index), max_dd, bars_per_year(index))
    return {
        "final_value": float(eq[-1]),
        "total_return": float(growth - 1.0),
        **{key: float(rat[key]) for key in ("cagr", "volatility", "sharpe", "sortino", "calmar")},
        "max_drawdown": max_dd,
    }


def liquidation_bar(result: BacktestResult) -> int | None:
    """The bar where the account was liquidated (its last trade's exit), or None."""
    if not result.stats.get("liquidated", False):
        return None
    tr = result.trades
    liquidations = tr.loc[tr["exit_reason"] == "liquidation", "exit_bar"]
    return int(liquidations.iloc[-1]) if len(liquidations) else None


def strategy_stats(result: BacktestResult) -> dict[str, float]:
    """`perf_stats` of the result's equity, returns ending at a liquidation as the engine's do
    (equal to ``result.stats`` for `PERF_KEYS`)."""
    return perf_stats(
        result.equity.to_numpy(),
        result.settings.init_cash,
        result.data.index,
        returns_end=liquidation_bar(result),
    )


def benchmark_stats(result: BacktestResult) -> dict[str, float]:
    """`perf_stats` of buy & hold on the result's close prices (its benchmark column)."""
    init = result.settings.init_cash
    return perf_stats(benchmark_equity(result.data["close"].to_numpy(), init), init, result.data.index)


def strategy_returns(result: BacktestResult) -> pd.Series:
    """The result's per-bar returns (``result.returns``: NaN after a liquidation, the dead account's
    flat bars are not returns, as for the engine's return statistics)."""
    return result.returns


def period_returns(equity: pd.Series, init_cash: float, rule: str) -> pd.Series:
    """Compounded return of each calendar period (``"ME"`` months, ``"YE"`` years) from equity.

    Each period's last equity against the previous period's (the first against the initial cash).
    """
    last = equity.resample(rule).last().dropna()
    prev = last.shift(1)
    prev.iloc[:1] = init_cash
    return (last / prev - 1.0).rename("return")


def monthly_table(monthly: pd.Series) -> pd.DataFrame:
    """Monthly returns as a year x month (1..12) table (NaN where the data has no such month)."""
    frame = pd.DataFrame({"year": monthly.index.year, "month": monthly.index.month, "r": monthly.to_numpy()})
    table = frame.pivot(index="year", columns="month", values="r")
    return table.reindex(columns=range(1, 13))


def rolling_window(bpy: float, n: int) -> tuple[int, str]:
    """A rolling window of about six months of bars (fewer on short data) and how to say it."""
    if not np.isfinite(bpy) or bpy <= 0:
        window = max(2, n // 4)
        return window, f"{window:,} bars"
    window = round(bpy / 2)
    label = "≈ 6 months"
    if window > n // 2:  # short data: a quarter of it, so the curve has something to show
        window = max(2, n // 4)
        label = (
            f"≈ {window / bpy * 365.25:.0f} days"
            if window / bpy < 0.25
            else f"≈ {window / bpy * 12:.1f} months"
        )
    return window, f"{window:,} bars, {label}"


def rolling_risk(returns: pd.Series, window: int, bpy: float) -> tuple[pd.Series, pd.Series]:
    """Annualized rolling Sharpe and volatility of per-bar returns over ``window`` bars."""
    roll = returns.rolling(window, min_periods=window)
    mean, std = roll.mean(), roll.std(ddof=1)
    ann = np.sqrt(bpy) if np.isfinite(bpy) else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = (mean / std.where(std > 0)) * ann
    return sharpe.rename("rolling_sharpe"), (std * ann).rename("rolling_volatility")


def exposure(result: BacktestResult) -> pd.Series:
    """Position value / equity at each close (1 = fully invested long, negative = short)."""
    value = result.position.to_numpy() * result.data["close"].to_numpy()
    eq = result.equity.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(eq > 0, value / eq, np.nan)
    return pd.Series(out, index=result.data.index, name="exposure")


def histogram(values: Any, bins: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """(bin centers, counts) of the finite values, so a chart ships bins instead of every value."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return np.array([]), np.array([])
    lo, hi = np.quantile(v, [0.0005, 0.9995]) if len(v) > 2_000 else (v.min(), v.max())
    if lo == hi:
        lo, hi = lo - 1e-9, hi + 1e-9
    counts, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    return (edges[:-1] + edges[1:]) / 2, counts
