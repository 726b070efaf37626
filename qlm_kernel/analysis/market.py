"""Market structure of one OHLCV series: trend, volatility regime, Hurst, autocorrelation, distribution.

What an assistant (or a researcher) reads before choosing a strategy family: is this series trending
or mean-reverting, calm or stressed, fat-tailed, serially correlated? Everything is computed from
log returns of the close with numpy only (no SciPy), and every figure is JSON-safe.

Estimators (named so they can be checked):
- Hurst: the scaling of the spread of lagged log-price differences, ``std(p[t+k] - p[t]) ~ k**H``
  for k in 2..max_lag (0.5 random walk, > 0.5 persistent/trending, < 0.5 anti-persistent). Less
  biased on short samples than classic rescaled range.
- Trend strength: R² of a straight line through the log price; Kaufman's efficiency ratio
  (|net move| / sum of |moves|, 0..1) over the whole series and the last ``window`` bars; the share
  of bars closing above their 200-bar simple moving average.
- Volatility regime: annualized realized volatility over rolling ``vol_window`` bars; the latest
  value's percentile within its own history; "low" below the 33rd percentile, "high" above the 67th.
- Autocorrelation: of returns (lags 1..5) and of absolute returns (volatility clustering), with the
  Ljung-Box Q statistic over 10 lags and its chi-square p-value.
- Distribution: mean, std, skew, excess kurtosis, quantiles, Jarque-Bera statistic and p-value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.errors import DataError

MIN_BARS = 50


def chi2_survival_even(x: float, dof: int) -> float:
    """P(X > x) for a chi-square with an even number of degrees of freedom (closed form)."""
    if x <= 0:
        return 1.0
    half = x / 2.0
    term, total = 1.0, 1.0
    for i in range(1, dof // 2):
        term *= half / i
        total += term
    return float(min(1.0, math.exp(-half) * total))


def autocorrelation(x: np.ndarray, lag: int) -> float:
    """Sample autocorrelation of `x` at `lag` (the usual biased estimator, as in Ljung-Box)."""
    x = x - x.mean()
    denom = float(np.dot(x, x))
    if denom == 0.0 or lag >= len(x):
        return float("nan")
    return float(np.dot(x[:-lag], x[lag:]) / denom)


def ljung_box(x: np.ndarray, lags: int = 10) -> tuple[float, float]:
    """Ljung-Box Q over `lags` (even) lags and its chi-square p-value."""
    n = len(x)
    q = n * (n + 2) * sum(autocorrelation(x, k) ** 2 / (n - k) for k in range(1, lags + 1))
    return float(q), chi2_survival_even(q, lags)


def hurst_exponent(log_price: np.ndarray, max_lag: int = 100) -> float:
    """Hurst exponent from ``std(p[t+k] - p[t]) ~ k**H`` fitted over lags 2..max_lag (log-log)."""
    max_lag = int(min(max_lag, len(log_price) // 4))
    lags = np.unique(np.geomspace(2, max(max_lag, 3), num=20).astype(int))
    spreads = np.array([np.std(log_price[k:] - log_price[:-k]) for k in lags])
    keep = spreads > 0
    if keep.sum() < 3:
        return float("nan")
    slope = np.polyfit(np.log(lags[keep]), np.log(spreads[keep]), 1)[0]
    return float(slope)


def efficiency_ratio(price: np.ndarray) -> float:
    """Kaufman's efficiency ratio: |last - first| / sum |changes| (1 = straight line, 0 = noise)."""
    moves = np.abs(np.diff(price)).sum()
    return float(abs(price[-1] - price[0]) / moves) if moves > 0 else 0.0


def _r_squared(y: np.ndarray) -> tuple[float, float]:
    """R² and slope per bar of a least-squares line through `y`."""
    t = np.arange(len(y), dtype=float)
    slope, intercept = np.polyfit(t, y, 1)
    resid = y - (slope * t + intercept)
    total = float(((y - y.mean()) ** 2).sum())
    return (1.0 - float((resid**2).sum()) / total if total > 0 else 0.0), float(slope)


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _bars_per_year(index: pd.Index) -> float:
    from qlm_kernel.engine.stats import bars_per_year

    if isinstance(index, pd.DatetimeIndex) and len(index) > 1:
        bpy = bars_per_year(index)
        if math.isfinite(bpy) and bpy > 0:
            return float(bpy)
    return 252.0


def _trend(close: np.ndarray, log_price: np.ndarray, window: int, bpy: float) -> dict[str, Any]:
    r2, slope = _r_squared(log_price)
    recent = log_price[-window:]
    r2_recent, slope_recent = _r_squared(recent)
    sma_n = min(200, len(close) // 2)
    sma = pd.Series(close).rolling(sma_n).mean().to_numpy()
    valid = ~np.isnan(sma)
    above = float((close[valid] > sma[valid]).mean()) if valid.any() else float("nan")
    er = efficiency_ratio(log_price)
    er_recent = efficiency_ratio(recent)
    label = "trending up" if slope_recent > 0 else "trending down"
    if er_recent < 0.1 or r2_recent < 0.3:
        label = "range-bound"
    return {
        "r_squared": _finite(r2),
        "annualized_drift": _finite(slope * bpy),
        "efficiency_ratio": _finite(er),
        "recent_window": len(recent),
        "recent_r_squared": _finite(r2_recent),
        "recent_annualized_drift": _finite(slope_recent * bpy),
        "recent_efficiency_ratio": _finite(er_recent),
        "share_above_sma": _finite(above),
        "sma_period": int(sma_n),
        "label": label,
    }


def _volatility(returns: np.ndarray, vol_window: int, bpy: float) -> dict[str, Any]:
    rolling = pd.Series(returns).rolling(vol_window).std().to_numpy() * math.sqrt(bpy)
    rolling = rolling[~np.isnan(rolling)]
    overall = float(np.std(returns, ddof=1) * math.sqrt(bpy))
    if len(rolling) == 0:
        return {
            "annualized": _finite(overall),
            "window": vol_window,
            "current": None,
            "percentile": None,
            "regime": "unknown",
        }
    current = float(rolling[-1])
    pct = float((rolling < current).mean() * 100.0)
    regime = "low" if pct < 33.3 else "high" if pct > 66.7 else "normal"
    return {
        "annualized": _finite(overall),
        "window": vol_window,
        "current": _finite(current),
        "percentile": _finite(pct),
        "regime": regime,
        "min": _finite(float(rolling.min())),
        "median": _finite(float(np.median(rolling))),
        "max": _finite(float(rolling.max())),
        "vol_of_vol": _finite(float(np.std(rolling) / np.mean(rolling))) if np.mean(rolling) > 0 else None,
    }


def _distribution(returns: np.ndarray) -> dict[str, Any]:
    n = len(returns)
    mean, std = float(returns.mean()), float(returns.std(ddof=1))
    centered = returns - mean
    m2 = float((centered**2).mean())
    skew = float((centered**3).mean() / m2**1.5) if m2 > 0 else 0.0
    kurt = float((centered**4).mean() / m2**2 - 3.0) if m2 > 0 else 0.0
    jb = n / 6.0 * (skew**2 + kurt**2 / 4.0)
    q = np.quantile(returns, [0.01, 0.05, 0.5, 0.95, 0.99])
    return {
        "mean": _finite(mean),
        "std": _finite(std),
        "skew": _finite(skew),
        "excess_kurtosis": _finite(kurt),
        "quantiles": {
            "1%": _finite(q[0]),
            "5%": _finite(q[1]),
            "50%": _finite(q[2]),
            "95%": _finite(q[3]),
            "99%": _finite(q[4]),
        },
        "jarque_bera": _finite(jb),
        "jarque_bera_p": _finite(chi2_survival_even(jb, 2)),
        "normal": bool(chi2_survival_even(jb, 2) > 0.05),
        "positive_share": _finite(float((returns > 0).mean())),
    }


def analyze_market_structure(
    df: pd.DataFrame, *, window: int = 250, vol_window: int = 20, max_lag: int = 100
) -> dict[str, Any]:
    """Trend, volatility regime, Hurst exponent, autocorrelation and return distribution of ``df``.

    ``df``: an OHLCV frame (only ``close`` is used). ``window``: bars for the "recent" trend figures;
    ``vol_window``: bars per rolling volatility estimate; ``max_lag``: longest lag for the Hurst fit.
    Returns a JSON-safe dict with a one-line ``summary``.
    """
    if "close" not in df:
        raise DataError(
            "the data has no 'close' column",
            hint="pass an OHLCV frame (qlm.load_ohlcv)",
            code="MISSING_COLUMN",
            columns=list(map(str, df.columns)),
        )
    close = df["close"].to_numpy(dtype=float)
    if len(close) < MIN_BARS:
        raise DataError(
            f"{len(close)} bars are too few to analyze; need at least {MIN_BARS}",
            code="TOO_SHORT",
            hint="use a longer dataset or sample",
            rows=len(close),
        )
    if not np.all(np.isfinite(close)) or np.any(close <= 0):
        raise DataError(
            "close prices must be finite and positive to take log returns",
            code="BAD_VALUES",
            hint="validate the data with qlm.validate_ohlcv",
        )
    bpy = _bars_per_year(df.index)
    log_price = np.log(close)
    returns = np.diff(log_price)
    hurst = hurst_exponent(log_price, max_lag=max_lag)
    behaviour = (
        "random walk"
        if hurst is None or not math.isfinite(hurst) or abs(hurst - 0.5) <= 0.05
        else "persistent (trending)"
        if hurst > 0.5
        else "anti-persistent (mean-reverting)"
    )
    q_ret, p_ret = ljung_box(returns)
    q_abs, p_abs = ljung_box(np.abs(returns))
    trend = _trend(close, log_price, int(min(window, len(close))), bpy)
    vol = _volatility(returns, vol_window, bpy)
    dist = _distribution(returns)
    running_max = np.maximum.accumulate(close)
    index = df.index
    out = {
        "bars": len(close),
        "start": str(index[0]) if len(index) else None,
        "end": str(index[-1]) if len(index) else None,
        "bars_per_year": _finite(bpy),
        "total_return": _finite(close[-1] / close[0] - 1.0),
        "buy_and_hold_max_drawdown": _finite(float((close / running_max - 1.0).min())),
        "trend": trend,
        "volatility": vol,
        "hurst": {"exponent": _finite(hurst), "max_lag": int(max_lag), "behaviour": behaviour},
        "autocorrelation": {
            "returns": {str(k): _finite(autocorrelation(returns, k)) for k in range(1, 6)},
            "abs_returns": {str(k): _finite(autocorrelation(np.abs(returns), k)) for k in range(1, 6)},
            "ljung_box_q10": _finite(q_ret),
            "ljung_box_p": _finite(p_ret),
            "abs_ljung_box_q10": _finite(q_abs),
            "abs_ljung_box_p": _finite(p_abs),
            "serially_correlated": bool(p_ret < 0.05),
            "volatility_clustering": bool(p_abs < 0.05),
        },
        "distribution": dist,
    }
    tails = "fat" if (dist["excess_kurtosis"] or 0.0) > 1.0 else "thin"
    out["summary"] = (
        f"{trend['label']}; Hurst {hurst:.2f} ({behaviour}); volatility regime "
        f"{vol['regime']}; {tails}-tailed returns"
    )
    return out
