"""Deterministic multi-regime synthetic OHLCV, fully vectorised (no Python loop over bars).

Model (per bar, log prices):
- a volatility regime (calm / normal / turbulent, per-bar sigma ``VOL_SIGMAS``) and a drift regime
  (up-trend / down-trend / mean-reverting) follow two independent Markov chains; each stays in a state for
  a geometric number of bars (means ``VOL_MEAN_BARS`` / ``DRIFT_MEAN_BARS``), then jumps to one of the
  other states uniformly. Built as run lengths + ``np.repeat``.
- trend states add a drift of ``+-TREND * sigma`` per bar to a random walk; a trend heads back toward
  the start price with probability ``TREND_HOMING`` (one scalar step per regime, not per bar), which keeps
  long series in a plausible price range instead of drifting to 0 or infinity;
  the mean-reverting state shrinks the random walk and feeds an AR(1) oscillation (``MR_PHI``, half-life
  ~23 bars), computed with a parallel prefix scan; the oscillation decays away in trend states.
- open = previous close times a small gap; high/low extend beyond max/min(open, close) by a half-normal
  multiple of sigma, so ``high >= max(open, close)`` and ``low <= min(open, close)`` hold exactly; prices
  are exp(...) > 0.
- volume grows with the regime's sigma (elasticity 1.5) and the bar's absolute return, with lognormal noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qlm_kernel.data.schema import new_block

VOL_SIGMAS = (0.002, 0.005, 0.012)
VOL_MEAN_BARS = (500, 300, 120)
DRIFT_STATES = ("up", "down", "mean_revert")
DRIFT_MEAN_BARS = (400, 400, 300)
TREND = 0.06
TREND_HOMING = 0.7
MR_PHI = 0.97
TREND_DECAY = 0.9
MR_RANDOM_WALK = 0.35
START_PRICE = 100.0
BASE_VOLUME = 1000.0


@dataclass(frozen=True)
class SyntheticOHLCV:
    """Synthetic bars as a (5, n) OHLCV block plus the regime labels that generated them."""

    block: np.ndarray
    vol_regime: np.ndarray  # int8: index into VOL_SIGMAS
    drift_regime: np.ndarray  # int8: index into DRIFT_STATES


def markov_states(rng: np.random.Generator, n: int, mean_bars: tuple[int, ...]) -> np.ndarray:
    """n labels of a Markov chain with geometric holding times and uniform jumps to another state."""
    k = len(mean_bars)
    means = np.asarray(mean_bars, dtype=np.float64)
    state = int(rng.integers(k))
    parts: list[np.ndarray] = []
    total = 0
    while total < n:
        m = int(2 * (n - total) / means.min()) + 16
        jumps = rng.integers(1, k, size=m)
        states = (state + np.concatenate(([0], np.cumsum(jumps[:-1])))) % k
        lengths = rng.geometric(1.0 / means[states])
        parts.append(np.repeat(states.astype(np.int8), lengths))
        total += int(lengths.sum())
        state = int((states[-1] + rng.integers(1, k)) % k)
    return np.concatenate(parts)[:n]


def ar1_scan(a: np.ndarray, e: np.ndarray, tol: float = 1e-17) -> np.ndarray:
    """y[t] = a[t] * y[t-1] + e[t] (y[-1] = 0) by a Hillis-Steele prefix scan; needs 0 <= a < 1.

    After the pass with stride k each y[t] includes the last 2k shocks; older ones are weighted by at most
    max(a)**(2k), so the scan stops once that is below ``tol``.
    """
    y = np.array(e, dtype=np.float64)
    prod = np.array(a, dtype=np.float64)
    amax = float(prod.max()) if prod.size else 0.0
    k = 1
    while k < y.size:
        y[k:] += prod[k:] * y[:-k]
        prod[k:] *= prod[:-k].copy()
        k *= 2
        if amax ** k < tol:
            break
    return y


def _trend_directions(rng: np.random.Generator, regime: np.ndarray, sigma: np.ndarray,
                      base: np.ndarray) -> np.ndarray:
    """+1/-1 per bar in trend regimes (0 when mean-reverting): home toward the start with TREND_HOMING."""
    starts = np.concatenate(([0], np.flatnonzero(np.diff(regime)) + 1))
    lengths = np.diff(np.append(starts, regime.size))
    pushes = (TREND * np.add.reduceat(sigma, starts)).tolist()  # log move of one whole trend segment
    levels = base[starts].tolist()
    trending = (regime[starts] != DRIFT_STATES.index("mean_revert")).tolist()
    homing = (rng.random(starts.size) < TREND_HOMING).tolist()
    signs = [0.0] * starts.size
    offset = 0.0
    for k in range(starts.size):  # one step per regime segment (~n/350), not per bar
        if trending[k]:
            toward = 1.0 if levels[k] + offset < 0.0 else -1.0
            signs[k] = toward if homing[k] else -toward
            offset += signs[k] * pushes[k]
    return np.repeat(np.asarray(signs), lengths)


def synthetic_ohlcv(n: int, seed: int) -> SyntheticOHLCV:
    """Generate n bars from ``seed`` (same seed -> identical arrays)."""
    rng = np.random.default_rng(seed)
    vol_regime = markov_states(rng, n, VOL_MEAN_BARS)
    drift_regime = markov_states(rng, n, DRIFT_MEAN_BARS)
    z = rng.standard_normal((6, n))
    sigma = np.asarray(VOL_SIGMAS)[vol_regime]
    mean_revert = drift_regime == DRIFT_STATES.index("mean_revert")

    persistence = np.where(mean_revert, MR_PHI, TREND_DECAY)
    log_close = np.cumsum(np.where(mean_revert, MR_RANDOM_WALK, 1.0) * z[0] * sigma)
    log_close += ar1_scan(persistence, np.where(mean_revert, sigma * z[1], 0.0))
    direction = _trend_directions(rng, drift_regime, sigma, log_close)
    drift_regime = np.where(direction > 0, 0, np.where(direction < 0, 1, 2)).astype(np.int8)
    log_close += np.cumsum(direction * TREND * sigma)

    block = new_block(n)
    o, h, lo, c, v = block
    np.exp(log_close, out=c)
    c *= START_PRICE
    o[0] = START_PRICE
    o[1:] = c[:-1] * np.exp(0.1 * sigma[1:] * z[2, 1:])
    np.maximum(o, c, out=h)
    h *= np.exp(0.5 * sigma * np.abs(z[3]))
    np.minimum(o, c, out=lo)
    lo *= np.exp(-0.5 * sigma * np.abs(z[4]))
    bar_move = np.abs(np.log(c / o)) / sigma
    activity = (np.asarray(VOL_SIGMAS) / VOL_SIGMAS[1])[vol_regime] ** 1.5
    v[:] = np.round(BASE_VOLUME * activity * (1.0 + 0.5 * bar_move) * np.exp(0.25 * z[5]))
    return SyntheticOHLCV(block=block, vol_regime=vol_regime, drift_regime=drift_regime)
