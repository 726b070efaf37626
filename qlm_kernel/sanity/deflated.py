"""Probabilistic and Deflated Sharpe Ratio.

Bailey & López de Prado, "The Sharpe Ratio Efficient Frontier", Journal of Risk 15(2), 2012 (PSR),
and "The Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting and
Non-Normality", Journal of Portfolio Management 40(5), 2014 (DSR).

``PSR(SR*) = Φ((SR - SR*) sqrt(T - 1) / sqrt(1 - skew SR + (kurt - 1) / 4 SR²))`` is the probability
that the true Sharpe ratio exceeds ``SR*`` given the estimate ``SR`` from ``T`` observations with
skewness ``skew`` and (non-excess) kurtosis ``kurt``. The DSR is the PSR against the Sharpe ratio the best
of ``N`` independent zero-skill trials would reach by luck,
``SR0 = sqrt(V[SR]) ((1 - g) Φ⁻¹(1 - 1/N) + g Φ⁻¹(1 - 1/(N e)))`` (g = 0.5772..., the
Euler-Mascheroni constant).

All Sharpe ratios here are **per period** (per bar), not annualized: divide an annualized Sharpe by
sqrt(periods per year) first, and give ``V[SR]`` in the same per-period units.
"""

from __future__ import annotations

import math
from numbers import Real
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.errors import ConfigError
from qlm_kernel.sanity.check_report import SanityReport

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def probabilistic_sharpe(
    sharpe: float,
    benchmark: float,
    n_obs: int,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """PSR: probability that the true per-period Sharpe exceeds ``benchmark`` (Bailey & López de
    Prado 2012). ``kurtosis`` is the ordinary (non-excess) kurtosis: 3 for normal returns."""
    n_obs = _check_obs(n_obs)
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if not denom > 0.0:
        raise ConfigError(
            f"PSR: skew={skew!r} and kurtosis={kurtosis!r} are inconsistent with sharpe={sharpe!r} "
            "(1 - skew*SR + (kurt-1)/4*SR^2 <= 0)",
            hint="kurtosis is the non-excess kurtosis (3 for normal returns) and must be >= 1 + skew^2",
            code="BAD_MOMENTS",
            skew=skew,
            kurtosis=kurtosis,
        )
    z = (sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom)
    return _NORMAL.cdf(z)


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """``SR0``: the expected maximum per-period Sharpe among ``n_trials`` independent trials whose true
    Sharpe is 0 and whose estimates have variance ``sharpe_variance`` (0 for a single trial)."""
    if n_trials <= 1:
        return 0.0
    z1 = _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
    z2 = _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def deflated_sharpe(
    sharpe: Any,
    n_trials: int | None = None,
    n_obs: int | None = None,
    skew: float = 0.0,
    kurtosis: float = 3.0,
    sharpe_variance: float | None = None,
    trials_sharpes: Any = None,
    *,
    confidence: float = 0.95,
    use_ledger: bool = True,
) -> SanityReport:
    """Deflated Sharpe Ratio of the best of ``n_trials`` backtests (Bailey & López de Prado 2014).

    ``sharpe``: the selected strategy's **per-period** Sharpe ratio (mean / std of its per-bar
    returns). ``n_trials``: how many (independent) configurations were tried, defaults to
    ``len(trials_sharpes)``. ``n_obs``: number of return observations T. ``skew``/``kurtosis``: of
    the selected strategy's returns (kurtosis non-excess, 3 = normal). ``sharpe_variance``: variance
    of the per-period Sharpe across trials; else estimated from ``trials_sharpes`` (ddof=1); else the
    null value ``1 / (T - 1)`` (the sampling variance of a zero Sharpe estimate with normal returns).

    ``sharpe`` may instead be a (T x N) return matrix / DataFrame or an object with
    ``returns_matrix()``: the best column by Sharpe is tested, with everything else estimated from
    the matrix. ``passed`` is ``DSR > confidence``.

    For an optimization result (a recorded job) without ``n_trials``, the number of trials is the trial
    ledger's count of variants of the strategy's family tried on the same data, across jobs, backtests,
    MCP runs and heal attempts (docs/optimization.md "Trial ledger"), when it exceeds the job's own
    trials; the verdict says "N variants tried on this data since DATE". ``use_ledger=False`` counts the
    job's trials only.
    """
    if not isinstance(sharpe, Real):
        ledger = _ledger_count(sharpe) if n_trials is None and use_ledger else None
        report = _from_matrix(sharpe, n_trials=n_trials, sharpe_variance=sharpe_variance,
                              confidence=confidence, at_least=ledger["variants"] if ledger else None)
        if ledger is not None:
            report.details["ledger"] = ledger
            report.numbers["ledger_variants"] = ledger["variants"]
            if ledger["variants"] > report.numbers.get("job_trials", 0):
                report.verdict = (f"{ledger['variants']} variants of {ledger['family']!r} tried on this data "
                                  f"since {str(ledger['since'])[:10]} (trial ledger): " + report.verdict)
        return report
    if not 0.0 < confidence < 1.0:
        raise ConfigError(
            f"deflated_sharpe: confidence must be between 0 and 1, got {confidence!r}",
            hint="the usual value is 0.95",
            code="BAD_THRESHOLD",
            value=confidence,
        )
    trials = None
    if trials_sharpes is not None:
        trials = np.asarray(trials_sharpes, dtype=np.float64).ravel()
        trials = trials[np.isfinite(trials)]
    if n_trials is None:
        if trials is None:
            raise ConfigError(
                "deflated_sharpe needs n_trials (how many configurations were tried)",
                hint="pass n_trials=... or trials_sharpes=[per-period Sharpe of every trial]",
                code="MISSING_ARGUMENT",
            )
        n_trials = int(trials.size)
    if isinstance(n_trials, bool) or int(n_trials) != n_trials or n_trials < 1:
        raise ConfigError(
            f"deflated_sharpe: n_trials must be an integer >= 1, got {n_trials!r}",
            hint="count every parameter set you backtested (1 = no selection)",
            code="BAD_TRIALS",
            value=repr(n_trials),
        )
    n_trials = int(n_trials)
    n_obs = _check_obs(n_obs)
    if sharpe_variance is not None:
        variance, source = float(sharpe_variance), "given"
    elif trials is not None and trials.size >= 2:
        variance, source = float(np.var(trials, ddof=1)), "trials_sharpes"
    else:
        variance, source = 1.0 / (n_obs - 1), "null 1/(T-1)"
    if not (math.isfinite(variance) and variance >= 0.0):
        raise ConfigError(
            f"deflated_sharpe: sharpe_variance must be a finite number >= 0, got {variance!r}",
            hint="the variance of the per-period Sharpe ratios across the trials",
            code="BAD_VARIANCE",
        )
    sr = float(sharpe)
    sr0 = expected_max_sharpe(n_trials, variance)
    dsr = probabilistic_sharpe(sr, sr0, n_obs, skew, kurtosis)
    psr0 = probabilistic_sharpe(sr, 0.0, n_obs, skew, kurtosis)
    passed = dsr > confidence
    if passed:
        verdict = (
            f"DSR = {dsr:.3f} > {confidence:g}: a per-period Sharpe of {sr:.4g} over {n_obs} observations "
            f"beats {sr0:.4g}, the best Sharpe expected by luck from {n_trials} trials; the edge is "
            "probably real."
        )
    else:
        verdict = (
            f"DSR = {dsr:.3f} <= {confidence:g}: a per-period Sharpe of {sr:.4g} over {n_obs} observations "
            f"is not convincingly above {sr0:.4g}, the best Sharpe expected by luck from {n_trials} "
            "trials; the result may be selection bias."
        )
    numbers = {
        "dsr": dsr,
        "confidence": confidence,
        "sharpe": sr,
        "sharpe0": sr0,
        "psr0": psr0,
        "n_trials": n_trials,
        "n_obs": n_obs,
        "skew": float(skew),
        "kurtosis": float(kurtosis),
        "sharpe_variance": variance,
    }
    details = {
        "sharpe_variance_source": source,
        "units": "per-period (not annualized) Sharpe ratios",
        "method": "Deflated Sharpe Ratio, Bailey & Lopez de Prado (2014)",
    }
    return SanityReport("deflated_sharpe", passed, verdict, numbers, details)


def _check_obs(n_obs: Any) -> int:
    if n_obs is None or isinstance(n_obs, bool) or int(n_obs) != n_obs or n_obs < 2:
        raise ConfigError(
            f"the Sharpe ratio tests need n_obs >= 2 return observations, got {n_obs!r}",
            hint="n_obs is the number of per-period returns the Sharpe ratio was computed from",
            code="BAD_OBS",
            value=repr(n_obs),
        )
    return int(n_obs)


def _ledger_count(result: Any) -> dict[str, Any] | None:
    """The trial ledger's count for an optimization result's strategy on its data, or None (not an
    optimization, no fingerprint, or no store)."""
    config = getattr(result, "config", None)
    if not isinstance(config, dict) or not config.get("data_fingerprint") or not config.get("strategy"):
        return None
    from pathlib import Path

    from qlm_kernel.errors import QLMError
    from qlm_kernel.store import default_store

    path = config.get("strategy_path")
    label = Path(path).stem if path else str(config["strategy"])
    try:
        count = default_store().trial_count(str(config["data_fingerprint"]), strategy=label)
    except QLMError:
        return None
    return count if count["variants"] > 0 else None


def _from_matrix(
    returns: Any, *, n_trials: int | None, sharpe_variance: float | None, confidence: float,
    at_least: int | None = None,
) -> SanityReport:
    """DSR of the best column of a (T x N) return matrix (moments from that column); ``at_least``: a
    larger count of trials known elsewhere (the trial ledger)."""
    if hasattr(returns, "returns_matrix"):
        returns = returns.returns_matrix()
    labels = [str(c) for c in returns.columns] if isinstance(returns, pd.DataFrame) else None
    matrix = np.asarray(returns, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    if matrix.ndim != 2 or matrix.shape[0] < 3 or not np.isfinite(matrix).all():
        raise ConfigError(
            "deflated_sharpe: pass a per-period Sharpe ratio, or a finite (T x N) return matrix with T >= 3",
            hint="e.g. deflated_sharpe(0.05, n_trials=100, n_obs=2000) or deflated_sharpe(returns_frame)",
            code="BAD_RETURNS",
        )
    mean = matrix.mean(axis=0)
    std = matrix.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpes = np.where(std > 0, mean / np.where(std > 0, std, 1.0), 0.0)
    best = int(np.argmax(sharpes))
    x = matrix[:, best] - mean[best]
    m2 = float(np.mean(x**2))
    skew = float(np.mean(x**3) / m2**1.5) if m2 > 0 else 0.0
    kurt = float(np.mean(x**4) / m2**2) if m2 > 0 else 3.0
    count = n_trials if n_trials is not None else max(matrix.shape[1], at_least or 0)
    report = deflated_sharpe(
        float(sharpes[best]),
        n_trials=count,
        n_obs=matrix.shape[0],
        skew=skew,
        kurtosis=kurt,
        sharpe_variance=sharpe_variance,
        trials_sharpes=sharpes if matrix.shape[1] >= 2 else None,
        confidence=confidence,
    )
    report.details["selected_trial"] = best
    report.numbers["job_trials"] = matrix.shape[1]
    if labels:
        report.details["selected_label"] = labels[best]
    return report
