"""Probability of Backtest Overfitting (PBO) by Combinatorially Symmetric Cross-Validation (CSCV).

Bailey, Borwein, López de Prado & Zhu, "The Probability of Backtest Overfitting", Journal of
Computational Finance 20(4), 2017. The T periods of N trials (parameter sets run on the same data)
are cut into S contiguous blocks; for each of the C(S, S/2) ways to call half of the blocks
in-sample (IS) and the rest out-of-sample (OOS), the trial with the best IS metric is picked and its
relative rank among all trials OOS is turned into a logit ``λ = ln(ω / (1 - ω))``, ``ω = rank / (N+1)``
(rank 1 = worst). PBO is the share of splits with ``λ <= 0``: how often the in-sample winner is no
better than the median out of sample. A selection procedure with real skill gives a PBO near 0;
picking the best of pure noise gives about 0.5.

Only per-block sums, sums of squares and counts per trial are needed (both halves of every split are
unions of blocks), so the optimizer can accumulate them instead of keeping full return series:
`pbo_from_blocks` takes them directly and `pbo` computes them from a return matrix.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.errors import ConfigError
from qlm_kernel.sanity.check_report import SanityReport

METRICS = ("sharpe", "mean")
MIN_BLOCK_PERIODS = 2
MAX_COMBINATIONS = 1_000_000
_CHUNK_ELEMENTS = 2_000_000  # combinations x trials per vectorized step (~16 MB per float array)


def pbo(
    returns: Any,
    n_blocks: int = 16,
    metric: str = "sharpe",
    *,
    threshold: float = 0.5,
) -> SanityReport:
    """PBO of choosing the best of N trials by ``metric``, from their per-period returns.

    ``returns``: a (T x N) numpy array or DataFrame (columns = trials, rows = the same T periods),
    or any object with a ``returns_matrix()`` method returning one (e.g. an optimization result).
    ``n_blocks``: even number of contiguous blocks S (default 16 -> 12,870 splits); when T is not a
    multiple of S the blocks differ in size by at most one period. ``metric``: ``"sharpe"``
    (per-period mean / std, ddof=1) or ``"mean"``. ``passed`` is ``PBO < threshold``.
    """
    labels: list[str] | None = None
    if hasattr(returns, "returns_matrix"):
        returns = returns.returns_matrix()
    if isinstance(returns, pd.DataFrame):
        labels = [str(c) for c in returns.columns]
        matrix = returns.to_numpy(dtype=np.float64)
    else:
        matrix = np.asarray(returns, dtype=np.float64)
    if matrix.ndim != 2:
        raise ConfigError(
            f"pbo needs a 2-D (periods x trials) return matrix, got shape {matrix.shape}",
            hint="pass one column of per-period returns per parameter set, rows aligned in time",
            code="BAD_RETURNS",
            shape=list(matrix.shape),
        )
    if not np.isfinite(matrix).all():
        bad = np.argwhere(~np.isfinite(matrix))[0]
        raise ConfigError(
            f"pbo: the return matrix contains NaN/inf (first at period {bad[0]}, trial {bad[1]})",
            hint="fill periods without a position with 0.0 (a flat bar earns nothing)",
            code="BAD_RETURNS",
            period=int(bad[0]),
            trial=int(bad[1]),
        )
    _check_blocks(n_blocks, matrix.shape[0], matrix.shape[1])
    sums, sumsq, counts = block_stats(matrix, n_blocks)
    return pbo_from_blocks(sums, sumsq, counts, metric=metric, threshold=threshold, labels=labels)


def block_bounds(n_periods: int, n_blocks: int) -> np.ndarray:
    """Start offsets of the ``n_blocks`` contiguous blocks plus ``n_periods`` at the end.

    Block ``b`` covers periods ``bounds[b]:bounds[b+1]``; sizes differ by at most one (like
    ``np.array_split``). Accumulators of block statistics should use these same bounds.
    """
    base, extra = divmod(int(n_periods), int(n_blocks))
    sizes = np.full(n_blocks, base, dtype=np.int64)
    sizes[:extra] += 1
    return np.concatenate(([0], np.cumsum(sizes)))


def block_stats(returns: np.ndarray, n_blocks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-block ``(sums, sums of squares, counts)`` of a (T x N) return matrix, each (n_blocks x N)."""
    matrix = np.asarray(returns, dtype=np.float64)
    starts = block_bounds(matrix.shape[0], n_blocks)[:-1]
    sums = np.add.reduceat(matrix, starts, axis=0)
    sumsq = np.add.reduceat(matrix * matrix, starts, axis=0)
    counts = np.broadcast_to(np.diff(block_bounds(matrix.shape[0], n_blocks))[:, None], sums.shape)
    return sums, sumsq, counts.astype(np.float64)


def pbo_from_blocks(
    sums: Any,
    sumsq: Any,
    counts: Any,
    *,
    metric: str = "sharpe",
    threshold: float = 0.5,
    labels: list[str] | None = None,
) -> SanityReport:
    """PBO from per-block statistics: ``sums``, ``sumsq`` (sum of squared returns) and ``counts``,
    each (n_blocks x N) (``counts`` may also be (n_blocks,) when every trial has the same periods).

    Blocks are taken in the given order; the number of blocks must be even. See `pbo`.
    """
    if metric not in METRICS:
        raise ConfigError(
            f"unknown pbo metric {metric!r}",
            hint=f"use one of: {', '.join(METRICS)}",
            code="BAD_METRIC",
            value=metric,
        )
    if not 0.0 < threshold < 1.0:
        raise ConfigError(
            f"pbo threshold must be between 0 and 1, got {threshold!r}",
            hint="the usual threshold is 0.5 (the in-sample winner is no better than a coin flip)",
            code="BAD_THRESHOLD",
            value=threshold,
        )
    S = np.asarray(sums, dtype=np.float64)
    Q = np.asarray(sumsq, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    if S.ndim != 2 or Q.shape != S.shape:
        raise ConfigError(
            f"pbo_from_blocks: sums and sumsq must both be (n_blocks x N), got {S.shape} and {Q.shape}",
            hint="one row per block, one column per trial",
            code="BAD_BLOCKS",
        )
    if n.ndim == 1:
        n = n[:, None]
    try:
        n = np.broadcast_to(n, S.shape)
    except ValueError:
        raise ConfigError(
            f"pbo_from_blocks: counts of shape {np.shape(counts)} do not match sums of shape {S.shape}",
            hint="counts is (n_blocks x N) or (n_blocks,)",
            code="BAD_BLOCKS",
        ) from None
    n_blocks, n_trials = S.shape
    _check_blocks(n_blocks, None, n_trials)
    if (n < MIN_BLOCK_PERIODS).any():
        raise ConfigError(
            f"pbo: every block needs at least {MIN_BLOCK_PERIODS} periods, the smallest has {int(n.min())}",
            hint="use fewer blocks (n_blocks=8 or 10) or more data",
            code="TOO_FEW_PERIODS",
            n_blocks=n_blocks,
        )
    if not (np.isfinite(S).all() and np.isfinite(Q).all()):
        raise ConfigError(
            "pbo_from_blocks: block statistics contain NaN/inf",
            hint="fill periods without a position with 0.0 before accumulating",
            code="BAD_BLOCKS",
        )
    if labels is not None and len(labels) != n_trials:
        labels = None

    combos = combination_matrix(n_blocks)
    logits, is_sel, oos_sel, chosen = _evaluate(combos, S, Q, n, metric)
    return _report(logits, is_sel, oos_sel, chosen, n_blocks, n_trials, metric, threshold, labels)


def combination_matrix(n_blocks: int) -> np.ndarray:
    """(C x n_blocks) 0/1 matrix: row c marks the in-sample blocks of split c, in
    ``itertools.combinations(range(n_blocks), n_blocks // 2)`` order."""
    rows = list(itertools.combinations(range(n_blocks), n_blocks // 2))
    mat = np.zeros((len(rows), n_blocks), dtype=np.float64)
    mat[np.repeat(np.arange(len(rows)), n_blocks // 2), np.asarray(rows).ravel()] = 1.0
    return mat


def _check_blocks(n_blocks: Any, n_periods: int | None, n_trials: int) -> None:
    if (
        isinstance(n_blocks, bool)
        or not isinstance(n_blocks, (int, np.integer))
        or n_blocks < 2
        or n_blocks % 2
    ):
        raise ConfigError(
            f"pbo: n_blocks must be an even integer >= 2, got {n_blocks!r}",
            hint="use e.g. n_blocks=16 (12,870 splits) or 10 (252 splits) for short histories",
            code="BAD_BLOCKS",
            value=repr(n_blocks),
        )
    n_combos = math.comb(int(n_blocks), int(n_blocks) // 2)
    if n_combos > MAX_COMBINATIONS:
        raise ConfigError(
            f"pbo: n_blocks={n_blocks} gives {n_combos:,} splits, more than {MAX_COMBINATIONS:,}",
            hint="use n_blocks <= 22; 16 is the usual choice",
            code="BAD_BLOCKS",
            value=int(n_blocks),
        )
    if n_trials < 2:
        raise ConfigError(
            f"pbo needs at least 2 trials (parameter sets) to choose from, got {n_trials}",
            hint="PBO measures the selection among several backtests; run an optimization first",
            code="TOO_FEW_TRIALS",
            n_trials=int(n_trials),
        )
    if n_periods is not None and n_periods < MIN_BLOCK_PERIODS * n_blocks:
        raise ConfigError(
            f"pbo: {n_periods} periods are too few for {n_blocks} blocks "
            f"(need at least {MIN_BLOCK_PERIODS} per block)",
            hint=f"use fewer blocks (n_blocks <= {max(2, 2 * (n_periods // (2 * MIN_BLOCK_PERIODS)))}) "
            "or more data",
            code="TOO_FEW_PERIODS",
            n_periods=int(n_periods),
            n_blocks=int(n_blocks),
        )


def _metric(s: np.ndarray, q: np.ndarray, n: np.ndarray, metric: str) -> np.ndarray:
    mean = s / n
    if metric == "mean":
        return mean
    # Sample variance (ddof=1) from sums; a (numerically) constant series has std 0: its Sharpe is
    # 0 when the mean is 0 (a trial that never trades) and +-inf otherwise.
    var = (q - s * mean) / (n - 1.0)
    flat = var <= 1e-14 * (q / n)
    std = np.sqrt(np.where(flat, 1.0, var))
    with np.errstate(divide="ignore", invalid="ignore"):
        signs = np.sign(mean) * np.inf
    return np.where(flat, np.where(mean == 0.0, 0.0, signs), mean / std)


def _evaluate(
    combos: np.ndarray, S: np.ndarray, Q: np.ndarray, n: np.ndarray, metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Logit, IS and OOS metric of the IS-best trial, and that trial's index, for every split."""
    n_combos, n_trials = combos.shape[0], S.shape[1]
    tot_s, tot_q, tot_n = S.sum(axis=0), Q.sum(axis=0), n.sum(axis=0)
    logits = np.empty(n_combos)
    is_sel = np.empty(n_combos)
    oos_sel = np.empty(n_combos)
    chosen = np.empty(n_combos, dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // n_trials)
    for lo in range(0, n_combos, step):
        block = combos[lo : lo + step]
        rows = np.arange(block.shape[0])
        is_s, is_q, is_n = block @ S, block @ Q, block @ n
        is_m = _metric(is_s, is_q, is_n, metric)
        oos_m = _metric(tot_s - is_s, tot_q - is_q, tot_n - is_n, metric)
        best = np.argmax(is_m, axis=1)  # ties: the first trial
        sel = oos_m[rows, best][:, None]
        # Relative OOS rank of the chosen trial, 1 = worst; ties share the average rank.
        rank = 1.0 + (oos_m < sel).sum(axis=1) + 0.5 * ((oos_m == sel).sum(axis=1) - 1)
        omega = rank / (n_trials + 1.0)
        logits[lo : lo + step] = np.log(omega / (1.0 - omega))
        is_sel[lo : lo + step] = is_m[rows, best]
        oos_sel[lo : lo + step] = sel[:, 0]
        chosen[lo : lo + step] = best
    return logits, is_sel, oos_sel, chosen


def _degradation(is_sel: np.ndarray, oos_sel: np.ndarray) -> dict[str, float]:
    """Least-squares line OOS = intercept + slope * IS over the splits (paper, section 4.2)."""
    ok = np.isfinite(is_sel) & np.isfinite(oos_sel)
    x, y = is_sel[ok], oos_sel[ok]
    if x.size < 2 or np.ptp(x) == 0.0:
        return {"slope": math.nan, "intercept": math.nan, "r2": math.nan}
    slope, intercept = np.polyfit(x, y, 1)
    ss_res = float(((y - (intercept + slope * x)) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {
        "slope": float(slope),
        "intercept": float(intercept),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan,
    }


def _report(
    logits: np.ndarray,
    is_sel: np.ndarray,
    oos_sel: np.ndarray,
    chosen: np.ndarray,
    n_blocks: int,
    n_trials: int,
    metric: str,
    threshold: float,
    labels: list[str] | None,
) -> SanityReport:
    n_combos = logits.size
    value = float(np.mean(logits <= 0.0))
    deg = _degradation(is_sel, oos_sel)
    prob_loss = float(np.mean(oos_sel < 0.0))
    q = np.quantile(logits, [0.05, 0.25, 0.5, 0.75, 0.95])
    passed = value < threshold
    counts = np.bincount(chosen, minlength=n_trials)
    top = np.argsort(-counts, kind="stable")[:5]
    most_selected = [
        {
            "trial": int(i),
            **({"label": labels[i]} if labels else {}),
            "share": float(counts[i] / n_combos),
        }
        for i in top
        if counts[i] > 0
    ]
    hist, edges = np.histogram(logits, bins=20)
    pct = f"{value:.0%}"
    if passed:
        verdict = (
            f"PBO = {value:.3f} < {threshold:g}: the in-sample best of {n_trials} trials ranked below the "
            f"out-of-sample median in only {pct} of {n_combos:,} splits; the in-sample winner "
            "usually stays in the top half out of sample. That is about ranks, not profits: it does not "
            "say the selected strategy makes money (check its out-of-sample return, the deflated Sharpe "
            "and the reality check), and on pure noise PBO averages 0.5, so a value a little below it is "
            "weak evidence."
        )
    else:
        verdict = (
            f"PBO = {value:.3f} >= {threshold:g}: the in-sample best of {n_trials} trials ranked below the "
            f"out-of-sample median in {pct} of {n_combos:,} splits; the optimization is likely "
            "overfit (choosing the best backtest is no better than chance)."
        )
    numbers = {
        "pbo": value,
        "threshold": threshold,
        "n_trials": int(n_trials),
        "n_blocks": int(n_blocks),
        "n_combinations": int(n_combos),
        "metric": metric,
        "prob_oos_loss": prob_loss,
        "degradation_slope": deg["slope"],
        "degradation_intercept": deg["intercept"],
        "degradation_r2": deg["r2"],
        "logit_mean": float(np.mean(logits)),
        "logit_median": float(q[2]),
        "logit_std": float(np.std(logits)),
    }
    details = {
        "logit_quantiles": {
            "p05": float(q[0]),
            "p25": float(q[1]),
            "p50": float(q[2]),
            "p75": float(q[3]),
            "p95": float(q[4]),
        },
        "logit_min": float(logits.min()),
        "logit_max": float(logits.max()),
        "logit_histogram": {"counts": hist.tolist(), "edges": edges.tolist()},
        "is_metric_mean": float(np.mean(is_sel[np.isfinite(is_sel)])) if np.isfinite(is_sel).any() else None,
        "oos_metric_mean": float(np.mean(oos_sel[np.isfinite(oos_sel)]))
        if np.isfinite(oos_sel).any()
        else None,
        "most_selected": most_selected,
        "method": "CSCV, Bailey, Borwein, Lopez de Prado & Zhu (2017); metric per period, not annualized",
    }
    return SanityReport("pbo", passed, verdict, numbers, details)
