"""Reality checks for data snooping: does the best of N tried variants beat a benchmark once all N
tries are accounted for?

The tests are `arch.bootstrap`'s (Kevin Sheppard's ``arch``): Hansen's Superior Predictive Ability
test (`SPA`; Hansen 2005, "A Test for Superior Predictive Ability", JBES 23(4)), White's Reality
Check (`RealityCheck`; White 2000, "A Reality Check for Data Snooping", Econometrica 68(5)) and the
StepM of Romano & Wolf (2005, Econometrica 73(4)), which names the variants that beat the benchmark
while controlling the family-wise error rate.

The null hypothesis is "no variant has a higher expected per-period return than the benchmark". arch
works on *losses*: the loss of a variant is minus its period return, so the loss differential arch
bootstraps, ``benchmark loss - variant loss``, is ``variant return - benchmark return`` (positive
when the variant does better). The statistic is the largest mean differential over the N variants;
its null distribution comes from a stationary block bootstrap of the differentials (every variant
resampled with the same blocks, so their correlation is kept) re-centred on the null. SPA's three
p-values re-centre differently: ``lower`` re-centres only variants that beat the benchmark,
``consistent`` (Hansen's recommended one) leaves out variants far worse than the benchmark (below
a -sqrt(2 log log T) standard-error threshold), ``upper`` re-centres every variant (the least
favourable configuration). White's Reality Check p-value is the ``upper`` p-value of the
non-studentized test (`RealityCheck(studentize=False)`), so poor variants dilute it; SPA's
``consistent`` p-value is less sensitive to them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.engine.bootstrap import default_block_length
from qlm_kernel.errors import ConfigError
from qlm_kernel.sanity.check_report import SanityReport

BENCHMARKS = ("zero", "buy_and_hold")
MIN_PERIODS = 20
MAX_SUPERIOR_LISTED = 50


def reality_check(
    opt_or_returns: Any,
    benchmark: Any = "zero",
    *,
    reps: int = 1000,
    block_size: int | None = None,
    seed: int | None = None,
    alpha: float = 0.05,
    close: Any = None,
) -> SanityReport:
    """Hansen's SPA, White's Reality Check and Romano-Wolf's StepM over N variants' return series.

    ``opt_or_returns``: an `OptimizationResult` (its ``returns_matrix()``: ~1,024 periods of every
    ok trial, sampled evenly from each trial's equity) or a (periods x trials) DataFrame/array of
    per-period returns, rows aligned in time. ``benchmark``: ``"zero"`` (does any variant make money
    at all?), ``"buy_and_hold"`` (does any beat holding the asset? the close's returns over the same
    periods: an optimization's sample timestamps looked up in ``close=``, a Series of closes or the
    OHLCV frame, or, when not given, the data its config names (a dataset, a sample spec or a file);
    with a return matrix, ``close`` has one more row than the matrix, or is indexed by the matrix's
    timestamps) or an array/Series of the benchmark's per-period returns (one per row).

    ``reps``: bootstrap replications. ``block_size``: mean block length (periods) of the stationary
    bootstrap; default: `arch.bootstrap.optimal_block_length` (Politis & White 2004, corrected by
    Patton, Politis & White 2009) of the mean loss differential across variants, its ``stationary``
    estimate rounded up and clipped to [1, T/2], or ``T ** (1/3)`` when that estimate is not finite.
    ``seed``: the same seed gives the same p-values. ``alpha``: the test size (and StepM's family-wise
    error rate). ``passed`` is SPA's consistent p-value < ``alpha``: the best variant beats the
    benchmark beyond what picking the best of N would give by luck. A pass is not proof of a future
    edge (the periods are the ones the variants were chosen on only if they are; costs, regime change
    and the search outside these N trials are not counted); a fail says the evidence is not there.
    """
    matrix, labels, params, index, what = _matrix(opt_or_returns)
    T, N = matrix.shape
    bench, bench_name = _benchmark(benchmark, opt_or_returns, index, T, close)
    _check_args(reps, block_size, alpha, T)
    # arch works on losses (minus returns): benchmark loss - variant loss = variant - benchmark return
    diff = matrix - bench[:, None]
    used = np.flatnonzero(np.abs(diff).max(axis=0) > 0.0)  # variants that ever differ from the benchmark
    block = int(block_size) if block_size is not None else default_block_length(
        diff[:, used].mean(axis=1) if used.size else diff.mean(axis=1))
    mean_excess = diff.mean(axis=0)
    best = int(np.argmax(mean_excess))
    base_numbers: dict[str, Any] = {
        "n_trials": int(N),
        "n_periods": int(T),
        "benchmark": bench_name,
        "alpha": float(alpha),
        "reps": int(reps),
        "block_size": int(block),
        "best_trial": labels[best],
        "best_mean_excess": float(mean_excess[best]),
    }
    if used.size == 0:  # every variant is the benchmark (e.g. none traded, against zero)
        numbers = {
            **base_numbers,
            "spa_pvalue_lower": 1.0,
            "spa_pvalue_consistent": 1.0,
            "spa_pvalue_upper": 1.0,
            "rc_pvalue": 1.0,
            "n_superior": 0,
        }
        verdict = (
            f"none of the {N} {what} differs from {_bench_words(bench_name)} in any period, "
            "so none can beat it."
        )
        return SanityReport("reality_check", False, verdict, numbers, {"superior": [], "method": _METHOD})

    from arch.bootstrap import SPA, RealityCheck, StepM

    seeds = np.random.SeedSequence(seed).spawn(3) if seed is not None else [None, None, None]
    rng = [np.random.default_rng(s) for s in seeds]
    bench_loss = -bench
    model_loss = -matrix[:, used]
    spa = SPA(bench_loss, model_loss, block_size=block, reps=reps, bootstrap="stationary", seed=rng[0])
    spa.compute()
    rc = RealityCheck(
        bench_loss, model_loss, block_size=block, reps=reps, bootstrap="stationary", studentize=False,
        seed=rng[1],
    )
    rc.compute()
    stepm = StepM(
        bench_loss, model_loss, size=alpha, block_size=block, reps=reps, bootstrap="stationary", seed=rng[2]
    )
    stepm.compute()
    p = {k: float(v) for k, v in spa.pvalues.items()}
    p_rc = float(rc.pvalues["upper"])
    superior = sorted(int(used[i]) for i in stepm.superior_models)
    superior.sort(key=lambda i: -mean_excess[i])
    passed = p["consistent"] < alpha
    numbers = {
        **base_numbers,
        "spa_pvalue_lower": p["lower"],
        "spa_pvalue_consistent": p["consistent"],
        "spa_pvalue_upper": p["upper"],
        "rc_pvalue": p_rc,
        "n_superior": len(superior),
    }
    details = {
        "superior": [
            {
                "trial": labels[i],
                **({"params": params[i]} if params is not None else {}),
                "mean_excess": float(mean_excess[i]),
            }
            for i in superior[:MAX_SUPERIOR_LISTED]
        ],
        "superior_truncated": len(superior) > MAX_SUPERIOR_LISTED,
        "best": {
            "trial": labels[best],
            **({"params": params[best]} if params is not None else {}),
            "mean_excess": float(mean_excess[best]),
        },
        "n_identical_to_benchmark": int(N - used.size),
        "method": _METHOD,
        "seed": seed,
    }
    words = _bench_words(bench_name)
    if passed:
        verdict = (
            f"the best of {N} {what} beats {words} after accounting for all {N} tries "
            f"(SPA p={p['consistent']:.3f}, White's reality check p={p_rc:.3f}); StepM finds "
            f"{len(superior)} of them superior at {alpha:g}."
        )
    else:
        verdict = (
            f"no evidence any of the {N} {what} beats {words} once all {N} tries are counted "
            f"(SPA p={p['consistent']:.3f} >= {alpha:g}, White's reality check p={p_rc:.3f}); picking the "
            "best of this many could do as well by luck alone."
        )
    return SanityReport("reality_check", passed, verdict, numbers, details)


_METHOD = (
    "arch.bootstrap SPA (Hansen 2005), RealityCheck (White 2000, non-studentized, upper p-value) and "
    "StepM (Romano & Wolf 2005); stationary block bootstrap of per-period return differentials"
)


def _bench_words(name: str) -> str:
    return {"zero": "zero (a flat account)", "buy_and_hold": "buy and hold"}.get(name, "the benchmark")


def _matrix(source: Any) -> tuple[np.ndarray, list[Any], list[dict[str, Any]] | None, Any, str]:
    """(T x N matrix, trial labels, params per column or None, row index or None, plural noun)."""
    params: list[dict[str, Any]] | None = None
    what = "variants"
    if hasattr(source, "returns_matrix"):
        frame = source.returns_matrix()
        rows = getattr(source, "rows", None)
        if rows is not None:
            params = [dict(rows[int(c)].get("params") or {}) for c in frame.columns]
            what = "parameter sets"
        source = frame
    index = None
    if isinstance(source, pd.DataFrame):
        labels: list[Any] = [c.item() if isinstance(c, np.generic) else c for c in source.columns]
        if params is None:
            labels = [str(c) for c in labels]
        index = source.index
        matrix = source.to_numpy(dtype=np.float64)
    else:
        matrix = np.asarray(source, dtype=np.float64)
        labels = list(range(matrix.shape[1])) if matrix.ndim == 2 else []
    if matrix.ndim != 2 or matrix.shape[1] < 1:
        raise ConfigError(
            f"reality_check needs a 2-D (periods x trials) return matrix, got shape {matrix.shape}",
            hint="pass an optimization result or one column of per-period returns per variant",
            code="BAD_RETURNS",
            shape=list(matrix.shape),
        )
    if matrix.shape[0] < MIN_PERIODS:
        raise ConfigError(
            f"reality_check needs at least {MIN_PERIODS} periods, got {matrix.shape[0]}",
            hint="run the variants on more data",
            code="TOO_FEW_PERIODS",
            n_periods=int(matrix.shape[0]),
        )
    if not np.isfinite(matrix).all():
        bad = np.argwhere(~np.isfinite(matrix))[0]
        raise ConfigError(
            f"reality_check: the return matrix contains NaN/inf (first at period {bad[0]}, trial {bad[1]})",
            hint="fill periods without a position with 0.0 (a flat bar earns nothing)",
            code="BAD_RETURNS",
            period=int(bad[0]),
            trial=int(bad[1]),
        )
    return matrix, labels, params, index, what


def _benchmark(benchmark: Any, source: Any, index: Any, T: int, close: Any) -> tuple[np.ndarray, str]:
    if isinstance(benchmark, str):
        if benchmark == "zero":
            return np.zeros(T), "zero"
        if benchmark == "buy_and_hold":
            return _buy_and_hold(source, index, T, close), "buy_and_hold"
        raise ConfigError(
            f"unknown benchmark {benchmark!r}",
            hint="use benchmark='zero', 'buy_and_hold' or an array of per-period benchmark returns",
            code="BAD_BENCHMARK",
            value=benchmark,
        )
    if isinstance(benchmark, pd.Series) and index is not None and not benchmark.index.equals(index):
        benchmark = benchmark.reindex(index)
    bench = np.asarray(benchmark, dtype=np.float64).reshape(-1)
    if bench.size != T or not np.isfinite(bench).all():
        raise ConfigError(
            f"the benchmark must be {T} finite per-period returns (one per row), got {bench.size}"
            + ("" if np.isfinite(bench).all() else " with NaN/inf"),
            hint="give the benchmark's returns over the same periods as the variants' returns",
            code="BAD_BENCHMARK",
        )
    return bench, "custom"


def _buy_and_hold(source: Any, index: Any, T: int, close: Any) -> np.ndarray:
    """The close's returns between consecutive rows: at an optimization's sample timestamps, or at a
    return matrix's timestamps, or from ``close`` with T + 1 values."""
    sample_index = getattr(source, "sample_index", None)
    if close is None and sample_index is not None:
        close = _close_from_config(getattr(source, "config", None) or {})
    if close is None:
        raise ConfigError(
            "benchmark='buy_and_hold' needs the prices: pass close= (the close Series or the OHLCV frame)",
            hint="reality_check(opt, 'buy_and_hold', close=df['close']) with the data the variants ran on",
            code="NEEDS_CLOSE",
        )
    if isinstance(close, pd.DataFrame):
        if "close" not in close.columns:
            raise ConfigError(
                "close= is a frame without a 'close' column (a universe has no single buy and hold)",
                hint="pass one close Series, or benchmark= an array of the benchmark's per-period returns",
                code="NEEDS_CLOSE",
            )
        close = close["close"]
    if sample_index is not None and isinstance(close, pd.Series):
        points = close.reindex(pd.Index(sample_index)).to_numpy(dtype=np.float64)[: T + 1]
    elif isinstance(close, pd.Series) and index is not None and not isinstance(index, pd.RangeIndex):
        if len(close) == T + 1 and close.index[1:].equals(index):
            points = close.to_numpy(dtype=np.float64)
        else:
            pos = close.index.get_indexer(index)
            if (pos < 1).any():
                raise ConfigError(
                    "close= does not cover the return matrix's timestamps (each and the bar before it)",
                    hint="pass the close Series of the data the variants ran on",
                    code="BAD_CLOSE",
                )
            c = close.to_numpy(dtype=np.float64)
            return c[pos] / c[pos - 1] - 1.0
    else:
        points = np.asarray(close, dtype=np.float64).reshape(-1)
    if points.size != T + 1 or not (np.isfinite(points).all() and (points > 0).all()):
        raise ConfigError(
            f"close= must give {T + 1} positive prices (the period starts and ends), got {points.size}",
            hint="pass the close Series of the data the variants ran on (indexed by time)",
            code="BAD_CLOSE",
        )
    return points[1:] / points[:-1] - 1.0


def _close_from_config(config: dict[str, Any]) -> pd.Series | None:
    """The close of the data an optimization ran on, when its config names it (dataset, sample spec or
    file); None for a frame passed directly or a universe."""
    from qlm_kernel.optimization.stored import job_data

    frame = job_data(config)  # None: a frame passed directly, a moved file (the caller says what to pass)
    if not isinstance(frame, pd.DataFrame) or "close" not in frame.columns:
        return None
    return frame["close"]


def _check_args(reps: Any, block_size: Any, alpha: Any, T: int) -> None:
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 100:
        raise ConfigError(
            f"reps must be an integer >= 100, got {reps!r}",
            hint="reps=1000 is the usual choice",
            code="BAD_REPS",
            value=repr(reps),
        )
    whole = isinstance(block_size, (int, np.integer)) and not isinstance(block_size, bool)
    if block_size is not None and not (whole and 1 <= block_size <= T):
        raise ConfigError(
            f"block_size must be an integer between 1 and {T} periods, got {block_size!r}",
            hint="leave block_size=None for arch's optimal block length",
            code="BAD_BLOCK_SIZE",
            value=repr(block_size),
        )
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise ConfigError(
            f"alpha must be between 0 and 1, got {alpha!r}",
            hint="alpha=0.05 is the usual test size",
            code="BAD_ALPHA",
            value=repr(alpha),
        )
