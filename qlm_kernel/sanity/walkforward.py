"""Walk-forward analysis: re-optimize on each in-sample window, trade the next window out of sample.

Windows: the data is cut into ``n_splits + 1`` equal folds; split k trains on fold k (``rolling``)
or folds 0..k (``anchored``) and tests on fold k + 1. The test window is traded with the chosen
parameters by running the strategy on the data up to the test window's end (so indicators are warm
and nothing after the window is visible) and measuring equity only inside the window. The stitched
out-of-sample returns give the headline Sharpe; ``passed`` when it is positive and the out-of-sample
Sharpe keeps at least ``min_efficiency`` of the average in-sample one.

On a universe (portfolio mode; rules in `qlm_kernel.sanity.universes`): the folds are equal numbers of
the universe's union bars (time, not each symbol's rows). Each in-sample window is
``u.between(first, last timestamp)`` of its folds, optimized as a portfolio (one parameter set for every
symbol with a bar in the window, shared cash). The test window is traded by the portfolio backtest of
``u.between(None, window's last timestamp)`` with the chosen parameters (every symbol listed by then,
including one that joined after the in-sample window), and the portfolio's equity is measured inside the
window, from the close of the bar before it: exactly ``qlm.backtest_portfolio(strategy,
u.between(None, test_end), **params)``'s equity there. Positions still open from before the window
carry into it, as for one asset.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from qlm_kernel.errors import ConfigError
from qlm_kernel.sanity.check_report import SanityReport

MIN_WINDOW = 50


def _sharpe(returns: np.ndarray, bars_per_year: float) -> float:
    if len(returns) < 2 or not np.std(returns, ddof=1) > 0:
        return float("nan")
    return float(np.mean(returns) / np.std(returns, ddof=1) * math.sqrt(bars_per_year))


def walk_forward(
    strategy: Any,
    data: Any = None,
    space: dict[str, Any] | None = None,
    *,
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    n_splits: int = 5,
    mode: str = "rolling",
    method: str = "grid",
    objective: str = "sharpe",
    min_efficiency: float = 0.5,
    optimize_kwargs: dict[str, Any] | None = None,
    **settings: Any,
) -> SanityReport:
    """Walk-forward (``mode`` "rolling" or "anchored") re-optimizing on each in-sample window.

    ``data``: an OHLCV frame or file, ``dataset=`` / ``sample=`` as in `qlm.backtest`, or a universe
    (a `Universe`, a dict symbol -> frame, a stored universe's name) for a portfolio walk-forward (the
    module's rules). The report's ``details["splits"]`` lists each window's spans, chosen ``params``,
    in-sample best, out-of-sample return and Sharpe (and on a universe the symbols of each window).
    """
    from qlm_kernel.engine.stats import bars_per_year
    from qlm_kernel.optimization import optimize
    from qlm_kernel.sanity.universes import span, universe_of
    from qlm_kernel.workspace import recorded_backtest as backtest
    from qlm_kernel.workspace import resolve_data

    if mode not in ("rolling", "anchored"):
        raise ConfigError(f"walk_forward: unknown mode {mode!r}", hint="mode='rolling' or mode='anchored'")
    if not isinstance(n_splits, int) or n_splits < 1:
        raise ConfigError("walk_forward: n_splits must be a positive integer", hint="e.g. n_splits=5")
    universe = universe_of(data, dataset) if sample is None else None
    if universe is not None:
        index = universe.index
    else:
        frame, _ = resolve_data(data, dataset=dataset, sample=sample)  # as qlm.backtest names data
        index = frame.index
    edges = np.linspace(0, len(index), n_splits + 2).astype(int)
    if np.min(np.diff(edges)) < MIN_WINDOW:
        raise ConfigError(
            f"walk_forward: {len(index)} bars are too few for {n_splits} splits",
            hint=f"use fewer splits or more data (each window needs >= {MIN_WINDOW} bars)",
        )
    bpy = bars_per_year(index)
    extra = dict(optimize_kwargs or {})
    rows, oos = [], []
    for k in range(n_splits):
        train_lo = 0 if mode == "anchored" else edges[k]
        train_hi, test_hi = edges[k + 1], edges[k + 2]
        train = span(universe, train_lo, train_hi) if universe is not None else frame.iloc[train_lo:train_hi]
        opt = optimize(
            strategy,
            train,
            space=space,
            method=method,
            objective=objective,
            record=False,
            **extra,
            **settings,
        )
        params = dict(opt.best_params or {})
        if universe is not None:
            equity = _portfolio_equity(strategy, span(universe, 0, test_hi), params, settings)
        else:
            res = backtest(strategy, frame.iloc[:test_hi], params=params, settings=settings, record=False)
            equity = res.equity.to_numpy()
        window = equity[train_hi - 1 : test_hi]
        returns = window[1:] / window[:-1] - 1.0
        oos.append(returns)
        row = {
            "split": k,
            "train_start": index[train_lo],
            "train_end": index[train_hi - 1],
            "test_start": index[train_hi],
            "test_end": index[test_hi - 1],
            "params": params,
            "in_sample": opt.best_value,
            "oos_return": float(window[-1] / window[0] - 1.0),
            "oos_sharpe": _sharpe(returns, bpy),
        }
        if universe is not None:
            row["train_symbols"] = list(train.symbols)
            row["test_symbols"] = [s for s in universe.symbols
                                   if universe.has_bar[train_hi:test_hi, universe.column(s)].any()]
        rows.append(row)
    stitched = np.concatenate(oos)
    oos_sharpe = _sharpe(stitched, bpy)
    is_values = [r["in_sample"] for r in rows if r["in_sample"] is not None and np.isfinite(r["in_sample"])]
    is_mean = float(np.mean(is_values)) if is_values else float("nan")
    efficiency = oos_sharpe / is_mean if objective == "sharpe" and is_mean > 0 else float("nan")
    total = float(np.prod(1.0 + stitched) - 1.0)
    passed = bool(
        np.isfinite(oos_sharpe)
        and oos_sharpe > 0
        and (not np.isfinite(efficiency) or efficiency >= min_efficiency)
    )
    what = f"portfolio of {len(universe.symbols)} symbols" if universe is not None else "strategy"
    if passed:
        verdict = (
            f"Out of sample the re-optimized {what} kept working: stitched Sharpe {oos_sharpe:.2f}"
            f" over {n_splits} {mode} windows (return {total:.1%})."
        )
    else:
        verdict = (
            f"Out of sample the edge did not hold: stitched Sharpe {oos_sharpe:.2f} over {n_splits} "
            f"{mode} windows"
            + (f", {efficiency:.0%} of the in-sample Sharpe" if np.isfinite(efficiency) else "")
            + "."
        )
    details: dict[str, Any] = {"mode": mode, "objective": objective, "splits": rows,
                               "oos_equity": _stitched_curve(index[edges[1]:edges[-1]], stitched)}
    if universe is not None:
        details.update(universe=universe.name, symbols=list(universe.symbols), portfolio=True)
    return SanityReport(
        name="walk_forward",
        passed=passed,
        verdict=verdict,
        numbers={
            "oos_sharpe": oos_sharpe,
            "oos_return": total,
            "in_sample_mean": is_mean,
            "efficiency": efficiency,
            "n_splits": n_splits,
        },
        details=details,
    )


def _stitched_curve(times: Any, returns: np.ndarray, points: int = 1000) -> dict[str, list[Any]]:
    """The out-of-sample windows' compounded growth of 1 at (at most ``points``) evenly spaced bars: the
    walk-forward figure's curve (times as ISO text)."""
    growth = np.cumprod(1.0 + returns)
    at = np.unique(np.linspace(0, len(growth) - 1, num=min(points, len(growth))).round().astype(int))
    stamps = list(times[1:][at]) if len(times) > len(growth) else list(times[at])
    return {"times": [str(t) for t in stamps], "growth": growth[at].tolist()}


def _portfolio_equity(strategy: Any, universe: Any, params: dict[str, Any], settings: dict[str, Any]) -> Any:
    """The portfolio's equity per union bar of ``universe`` with ``params`` (unrecorded pure run)."""
    from qlm_kernel.strategy.portfolio_run import backtest_portfolio

    return backtest_portfolio(strategy, universe, **params, **settings).equity.to_numpy()
