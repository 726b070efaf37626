"""Walk-forward analysis: re-optimize on each in-sample window, trade the next window out of sample.

Windows: the data is cut into ``n_splits + 1`` equal folds; split k trains on fold k (``rolling``)
or folds 0..k (``anchored``) and tests on fold k + 1. The test window is traded with the chosen
parameters by running the strategy on the data up to the test window's end (so indicators are warm
and nothing after the window is visible) and measuring equity only inside the window. The stitched
out-of-sample returns give the headline Sharpe; ``passed`` when it is positive and the out-of-sample
Sharpe keeps at least ``min_efficiency`` of the average in-sample one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from qlm_kernel.errors import ConfigError
from qlm_kernel.sanity.report import SanityReport


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
    """Walk-forward (``mode`` "rolling" or "anchored") re-optimizing on each in-sample window."""
    from qlm_kernel.engine.stats import bars_per_year
    from qlm_kernel.optimization import optimize
    from qlm_kernel.workspace import recorded_backtest as backtest
    from qlm_kernel.workspace import resolve_data

    if mode not in ("rolling", "anchored"):
        raise ConfigError(f"walk_forward: unknown mode {mode!r}", hint="mode='rolling' or mode='anchored'")
    if not isinstance(n_splits, int) or n_splits < 1:
        raise ConfigError("walk_forward: n_splits must be a positive integer", hint="e.g. n_splits=5")
    frame, _ = resolve_data(data, dataset=dataset, sample=sample)  # as qlm.backtest names data
    edges = np.linspace(0, len(frame), n_splits + 2).astype(int)
    if np.min(np.diff(edges)) < 50:
        raise ConfigError(
            f"walk_forward: {len(frame)} bars are too few for {n_splits} splits",
            hint="use fewer splits or more data (each window needs >= 50 bars)",
        )
    bpy = bars_per_year(frame.index)
    extra = dict(optimize_kwargs or {})
    rows, oos = [], []
    for k in range(n_splits):
        train_lo = 0 if mode == "anchored" else edges[k]
        train_hi, test_hi = edges[k + 1], edges[k + 2]
        train = frame.iloc[train_lo:train_hi]
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
        res = backtest(strategy, frame.iloc[:test_hi], params=params, settings=settings, record=False)
        equity = res.equity.to_numpy()
        window = equity[train_hi - 1 : test_hi]
        returns = window[1:] / window[:-1] - 1.0
        oos.append(returns)
        rows.append(
            {
                "split": k,
                "train_start": frame.index[train_lo],
                "train_end": frame.index[train_hi - 1],
                "test_start": frame.index[train_hi],
                "test_end": frame.index[test_hi - 1],
                "params": params,
                "in_sample": opt.best_value,
                "oos_return": float(window[-1] / window[0] - 1.0),
                "oos_sharpe": _sharpe(returns, bpy),
            }
        )
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
    if passed:
        verdict = (
            f"Out of sample the re-optimized strategy kept working: stitched Sharpe {oos_sharpe:.2f}"
            f" over {n_splits} {mode} windows (return {total:.1%})."
        )
    else:
        verdict = (
            f"Out of sample the edge did not hold: stitched Sharpe {oos_sharpe:.2f} over {n_splits} "
            f"{mode} windows"
            + (f", {efficiency:.0%} of the in-sample Sharpe" if np.isfinite(efficiency) else "")
            + "."
        )
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
        details={"mode": mode, "objective": objective, "splits": rows},
    )
