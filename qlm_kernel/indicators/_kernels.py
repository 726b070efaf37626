"""Numba kernels behind `qlm_kernel.indicators`: float64 1-D arrays in, arrays out.

Every kernel is ``@njit(nogil=True, cache=True)`` and free of Python objects, so threads running
a parameter sweep really run in parallel and a new process loads the compiled code from cache.
``error_model="numpy"`` makes float division by zero give inf/NaN (like numpy and pandas) instead
of raising. Warm-up bars are NaN, like pandas with ``min_periods=period``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_jit = njit(nogil=True, cache=True, error_model="numpy")


@_jit
def rolling_mean_nb(x, n):
    """Rolling mean; a window holding a NaN or ±inf gives NaN.

    Sums are kept relative to a pivot re-chosen (with an exact re-sum) every ``n`` bars, so rounding
    never accumulates over long series and a non-finite value stops mattering once it leaves.
    """
    N = x.shape[0]
    out = np.empty(N, dtype=np.float64)
    pivot = 0.0
    s = 0.0
    bad = 0
    block = 0  # next block start (a counter: i % n costs an integer division per bar)
    for i in range(N):
        v = x[i]
        finite = np.isfinite(v)
        recenter = False
        if i == block:
            block += n
            recenter = finite
        if recenter:
            pivot = v
            s = 0.0
            bad = 0
            for j in range(max(0, i - n + 1), i):
                w = x[j]
                if np.isfinite(w):
                    s += w - pivot
                else:
                    bad += 1
        elif i >= n:
            old = x[i - n]
            if np.isfinite(old):
                s -= old - pivot
            else:
                bad -= 1
        if finite:
            s += v - pivot
        else:
            bad += 1
        if i >= n - 1 and bad == 0:
            out[i] = pivot + s / n
        else:
            out[i] = np.nan
    return out


@_jit
def rolling_var_nb(x, n, ddof, take_sqrt):
    """Rolling variance (or std when ``take_sqrt``) with ``ddof``; NaN/inf in the window -> NaN.

    Pivot-shifted sums re-centred every ``n`` bars keep cancellation small; a window of identical
    values gives exactly 0 (as pandas does).
    """
    N = x.shape[0]
    out = np.empty(N, dtype=np.float64)
    denom = n - ddof
    pivot = 0.0
    s1 = 0.0
    s2 = 0.0
    bad = 0
    run = 0
    block = 0
    for i in range(N):
        v = x[i]
        finite = np.isfinite(v)
        if i > 0 and v == x[i - 1]:
            run += 1
        else:
            run = 1
        recenter = False
        if i == block:
            block += n
            recenter = finite
        if recenter:
            pivot = v
            s1 = 0.0
            s2 = 0.0
            bad = 0
            for j in range(max(0, i - n + 1), i):
                w = x[j]
                if np.isfinite(w):
                    d = w - pivot
                    s1 += d
                    s2 += d * d
                else:
                    bad += 1
        elif i >= n:
            old = x[i - n]
            if np.isfinite(old):
                d = old - pivot
                s1 -= d
                s2 -= d * d
            else:
                bad -= 1
        if finite:
            d = v - pivot
            s1 += d
            s2 += d * d
        else:
            bad += 1
        if i >= n - 1 and bad == 0 and denom > 0:
            if run >= n:
                var = 0.0
            else:
                var = (s2 - s1 * s1 / n) / denom
                if var < 0.0:
                    var = 0.0
            out[i] = np.sqrt(var) if take_sqrt else var
        else:
            out[i] = np.nan
    return out


@_jit
def wma_nb(x, n):
    """Linearly weighted moving average (weights 1..n, newest heaviest); NaN/inf in window -> NaN.

    O(1) per bar by recurrence (num_t = num_{t-1} + n*x_t - sum_{t-1}), recomputed exactly at the
    start of every block of ``n`` bars around a fresh pivot.
    """
    N = x.shape[0]
    out = np.empty(N, dtype=np.float64)
    wsum = n * (n + 1) / 2.0
    pivot = 0.0
    s = 0.0
    num = 0.0
    bad = 0
    block = 0
    for i in range(N):
        v = x[i]
        if i == block:
            block += n
            if np.isfinite(v):
                pivot = v
            s = 0.0
            num = 0.0
            bad = 0
            lo = i - n + 1
            for j in range(max(0, lo), i + 1):
                w = x[j]
                if np.isfinite(w):
                    d = w - pivot
                    s += d
                    num += (j - lo + 1) * d
                else:
                    bad += 1
        else:
            d = v - pivot if np.isfinite(v) else 0.0
            if not np.isfinite(v):
                bad += 1
            num += n * d - s
            s += d
            if i >= n:
                old = x[i - n]
                if np.isfinite(old):
                    s -= old - pivot
                else:
                    bad -= 1
        if i >= n - 1 and bad == 0:
            out[i] = pivot + num / wsum
        else:
            out[i] = np.nan
    return out


@_jit
def ema_nb(x, alpha, minp):
    """Exponential mean == pandas ``ewm(alpha=alpha, adjust=False, min_periods=minp).mean()``.

    Seeded with the first observation. A NaN repeats the previous value and (``ignore_na=False``)
    decays the old weight, so after ``k`` NaNs the update is
    ``(d*w + alpha*x)/(d + alpha)`` with ``d = (1-alpha)**(k+1)`` — pandas' classic rule, also
    vectorbt's. (pandas 3.1 special-cases alpha=0.5, i.e. span=3, after NaN gaps; we do not.)
    """
    N = x.shape[0]
    out = np.empty(N, dtype=np.float64)
    if N == 0:
        return out
    decay = 1.0 - alpha
    norm = decay + alpha  # pandas divides by (old_wt + new_wt); skipped when exactly 1
    exact_norm = norm == 1.0
    old_wt = 1.0
    weighted = x[0]
    nobs = 1 if weighted == weighted else 0
    out[0] = weighted if nobs >= minp else np.nan
    for i in range(1, N):
        cur = x[i]
        if cur == cur:
            nobs += 1
            if weighted == weighted:
                if old_wt == 1.0:  # no gap: the hot path
                    if weighted != cur:
                        weighted = decay * weighted + alpha * cur
                        if not exact_norm:
                            weighted /= norm
                else:
                    old_wt *= decay
                    if weighted != cur:
                        weighted = (old_wt * weighted + alpha * cur) / (old_wt + alpha)
                    old_wt = 1.0
            else:
                weighted = cur
        elif weighted == weighted:
            old_wt *= decay
        out[i] = weighted if nobs >= minp else np.nan
    return out


@_jit
def rolling_extreme_nb(x, n, is_max):
    """Rolling max (``is_max``) or min; a window holding a NaN gives NaN.

    van Herk/Gil-Werman: bars are cut into blocks of ``n``; a window [i-n+1, i] is the suffix max
    of the previous block from i-n+1 (kept in an ``n``-slot buffer filled when a block starts)
    combined with the running max of the current block. ~3 comparisons per bar for any ``n``,
    no data-dependent loops, one output allocation. The min is computed as -max(-x).
    """
    N = x.shape[0]
    out = np.empty(N, dtype=np.float64)
    suffix = np.empty(n, dtype=np.float64)
    sign = 1.0 if is_max else -1.0
    block = 0  # start of the current block
    nxt = 0  # start of the next block
    run = -np.inf  # max of the current block so far
    nans = 0
    for i in range(N):
        if i == nxt:
            block = i
            nxt = i + n
            run = -np.inf
            if i >= n:  # suffix maxima of the block that just ended: [i-n, i-1]
                m = -np.inf
                for j in range(i - 1, i - n - 1, -1):
                    w = sign * x[j]
                    if w > m:
                        m = w
                    suffix[j - i + n] = m
        xv = x[i]
        if xv != xv:
            nans += 1
        else:
            v = sign * xv
            if v > run:
                run = v
        if i >= n and x[i - n] != x[i - n]:
            nans -= 1
        if i >= n - 1 and nans == 0:
            start = i - n + 1
            if start == block:
                out[i] = sign * run
            else:
                h = suffix[start - block + n]
                out[i] = sign * (h if h > run else run)
        else:
            out[i] = np.nan
    return out


@_jit
def rsi_nb(x, n):
    """Wilder RSI: average gain/loss seeded with the simple mean of the first ``n`` price changes,
    then ``avg = (avg*(n-1) + change)/n``. First value at bar ``n`` (after leading NaNs).

    A change needs two consecutive non-NaN prices; other bars leave the averages unchanged, and a
    NaN price gives NaN. Flat market (no gains, no losses) -> 50; no losses -> 100.
    """
    N = x.shape[0]
    out = np.full(N, np.nan)
    gain = 0.0
    loss = 0.0
    count = 0
    keep = (n - 1.0) / n
    inv = 1.0 / n
    for i in range(1, N):
        cur = x[i]
        prev = x[i - 1]
        if cur != cur:
            continue
        if prev == prev:
            ch = cur - prev
            g = ch if ch > 0.0 else 0.0
            lo = -ch if ch < 0.0 else 0.0
            if count < n:
                gain += g
                loss += lo
                count += 1
                if count == n:
                    gain /= n
                    loss /= n
            else:
                gain = gain * keep + g * inv
                loss = loss * keep + lo * inv
        if count >= n:
            total = gain + loss
            out[i] = 50.0 if total == 0.0 else 100.0 * gain / total
    return out


@_jit
def true_range_nb(high, low, close):
    """True range: max(high-low, |high-prev close|, |low-prev close|); high-low when no prev close."""
    N = high.shape[0]
    out = np.empty(N, dtype=np.float64)
    for i in range(N):
        tr = high[i] - low[i]
        if i > 0:
            pc = close[i - 1]
            if pc == pc:
                a = abs(high[i] - pc)
                b = abs(low[i] - pc)
                if a > tr:
                    tr = a
                if b > tr:
                    tr = b
        out[i] = tr
    return out


@_jit
def wilder_nb(x, n):
    """Wilder smoothing (RMA): seed = mean of the first ``n`` non-NaN values, then
    ``avg = (avg*(n-1) + x)/n``. NaN inputs give NaN and leave the average unchanged."""
    N = x.shape[0]
    out = np.full(N, np.nan)
    avg = 0.0
    count = 0
    keep = (n - 1.0) / n
    inv = 1.0 / n
    for i in range(N):
        v = x[i]
        if v != v:
            continue
        if count < n:
            avg += v
            count += 1
            if count == n:
                avg /= n
                out[i] = avg
        else:
            avg = avg * keep + v * inv
            out[i] = avg
    return out


@_jit
def roc_nb(x, n):
    """Rate of change in percent: 100 * (x_t / x_{t-n} - 1); NaN for the first ``n`` bars."""
    N = x.shape[0]
    out = np.empty(N, dtype=np.float64)
    for i in range(N):
        if i < n:
            out[i] = np.nan
        else:
            out[i] = 100.0 * (x[i] / x[i - n] - 1.0)
    return out


@_jit
def zscore_nb(x, mean, std):
    """(x - mean) / std, NaN where std is 0 or NaN."""
    N = x.shape[0]
    out = np.empty(N, dtype=np.float64)
    for i in range(N):
        s = std[i]
        if s > 0.0:
            out[i] = (x[i] - mean[i]) / s
        else:
            out[i] = np.nan
    return out


@_jit
def cross_nb(a, b, above):
    """a crosses above (or below) b at t: strict now, non-strict before; all four values non-NaN."""
    N = a.shape[0]
    out = np.zeros(N, dtype=np.bool_)
    for i in range(1, N):
        if above:
            out[i] = a[i] > b[i] and a[i - 1] <= b[i - 1]
        else:
            out[i] = a[i] < b[i] and a[i - 1] >= b[i - 1]
    return out


@_jit
def cross_both_nb(a, b):
    """`cross_nb` in both directions in one pass over the inputs: (crossed above, crossed below)."""
    N = a.shape[0]
    up = np.zeros(N, dtype=np.bool_)
    down = np.zeros(N, dtype=np.bool_)
    for i in range(1, N):
        up[i] = a[i] > b[i] and a[i - 1] <= b[i - 1]
        down[i] = a[i] < b[i] and a[i - 1] >= b[i - 1]
    return up, down


@_jit
def cross_scalar_nb(a, b, above):
    """`cross_nb` against a constant level ``b``."""
    N = a.shape[0]
    out = np.zeros(N, dtype=np.bool_)
    for i in range(1, N):
        if above:
            out[i] = a[i] > b and a[i - 1] <= b
        else:
            out[i] = a[i] < b and a[i - 1] >= b
    return out
