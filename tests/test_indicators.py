"""Indicators against independent pandas computations (and vectorbt where it has the same thing)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qlm_kernel import ConfigError
from qlm_kernel import indicators as ta

PERIODS = [1, 2, 5, 14, 50, 300]


def random_ohlc(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A geometric random walk with consistent OHLC bars on an hourly UTC index."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]] * (1 + rng.normal(0.0, 0.001, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, 0.004, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, 0.004, n)))
    index = pd.date_range("2021-01-01", periods=n, freq="h", tz="UTC")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close}, index=index)


DF = random_ohlc()
CLOSE = DF["close"]


def assert_close(got, want, tol: float = 1e-9) -> None:
    """Same NaN positions, and every other value within ``tol``."""
    g = np.asarray(got, dtype=float)
    w = np.asarray(want, dtype=float)
    assert g.shape == w.shape
    np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
    mask = ~np.isnan(g)
    if mask.any():
        assert np.max(np.abs(g[mask] - w[mask])) <= tol


def exact_rolling(x: pd.Series, n: int, fn) -> pd.Series:
    """pandas rolling().apply with a numpy two-pass function: slow but exact, the oracle."""
    return x.rolling(n).apply(fn, raw=True)


def std_of(ddof: int):
    """Two-pass numpy std of a window (NaN when the window is too short for ``ddof``)."""
    return lambda a: a.std(ddof=ddof) if a.size > ddof else np.nan


def wilder_reference(x: pd.Series, n: int, first: int) -> pd.Series:
    """Wilder's RMA via pandas: SMA of the first n values from ``first`` as seed, then
    ewm(alpha=1/n, adjust=False)."""
    tail = x.iloc[first:].copy()
    seeded = tail.iloc[n - 1 :].copy()
    seeded.iloc[0] = tail.iloc[:n].mean()
    return seeded.ewm(alpha=1.0 / n, adjust=False).mean().reindex(x.index)


# -- moving averages ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", PERIODS)
def test_sma_matches_pandas(n):
    assert_close(ta.sma(CLOSE, n), CLOSE.rolling(n).mean())


@pytest.mark.parametrize("n", PERIODS)
def test_ema_matches_pandas_ewm(n):
    assert_close(ta.ema(CLOSE, n), CLOSE.ewm(span=n, adjust=False, min_periods=n).mean())


@pytest.mark.parametrize("n", PERIODS)
def test_wma_matches_weighted_rolling_apply(n):
    w = np.arange(1, n + 1, dtype=float)
    assert_close(ta.wma(CLOSE, n), exact_rolling(CLOSE, n, lambda a: a @ w / w.sum()))


def test_wma_long_series_does_not_drift():
    x = pd.Series(100 + np.cumsum(np.random.default_rng(5).normal(size=200_000)))
    got = ta.wma(x, 20).to_numpy()[-1000:]
    w = np.arange(1, 21, dtype=float)
    want = np.lib.stride_tricks.sliding_window_view(x.to_numpy()[-1019:], 20) @ w / w.sum()
    assert np.max(np.abs(got - want)) < 1e-9


@pytest.mark.parametrize("n", PERIODS)
@pytest.mark.parametrize("ddof", [0, 1])
def test_rolling_std_matches_exact_and_pandas(n, ddof):
    got = ta.rolling_std(CLOSE, n, ddof=ddof)
    assert_close(got, exact_rolling(CLOSE, n, std_of(ddof)))
    # pandas' own online algorithm drifts by ~1e-10 on this series; we agree within that.
    assert_close(got, CLOSE.rolling(n).std(ddof=ddof), tol=1e-8)


def test_rolling_std_default_is_pandas_ddof1_and_flat_window_is_zero():
    x = pd.Series([1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 7.0])
    assert_close(ta.rolling_std(x, 3), x.rolling(3).std())
    assert ta.rolling_std(x, 3).iloc[5] == 0.0


@pytest.mark.parametrize("n", PERIODS)
def test_highest_lowest_match_pandas(n):
    assert_close(ta.highest(CLOSE, n), CLOSE.rolling(n).max(), tol=0)
    assert_close(ta.lowest(CLOSE, n), CLOSE.rolling(n).min(), tol=0)


@pytest.mark.parametrize("n", [1, 5, 14, 50])
def test_zscore_matches_exact_pandas(n):
    mean = CLOSE.rolling(n).mean()
    std = exact_rolling(CLOSE, n, std_of(1))
    want = ((CLOSE - mean) / std).where(std > 0)
    assert_close(ta.zscore(CLOSE, n), want, tol=1e-8)


def test_zscore_flat_window_is_nan():
    x = pd.Series([1.0, 1.0, 1.0, 2.0])
    out = ta.zscore(x, 3)
    assert np.isnan(out.iloc[2]) and out.iloc[3] == pytest.approx((2 - 4 / 3) / np.std([1, 1, 2], ddof=1))


@pytest.mark.parametrize("n", [1, 3, 10])
def test_roc_is_percent_change_times_100(n):
    assert_close(ta.roc(CLOSE, n), CLOSE.pct_change(n) * 100)


# -- RSI / ATR (Wilder) ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 14, 30])
def test_rsi_matches_wilder_reference(n):
    d = CLOSE.diff()
    gain = wilder_reference(d.clip(lower=0), n, first=1)
    loss = wilder_reference((-d).clip(lower=0), n, first=1)
    want = 100 - 100 / (1 + gain / loss)
    got = ta.rsi(CLOSE, n)
    assert_close(got, want)
    assert got.first_valid_index() == CLOSE.index[n]  # first value after n price changes


def test_rsi_edge_cases():
    assert ta.rsi(np.arange(20.0), 5)[-1] == 100.0  # only gains
    assert ta.rsi(np.arange(20.0)[::-1].copy(), 5)[-1] == 0.0  # only losses
    assert ta.rsi(np.full(20, 3.0), 5)[-1] == 50.0  # flat market


def test_rsi_skips_leading_nans():
    x = CLOSE.to_numpy()
    padded = np.r_[np.full(7, np.nan), x]
    assert_close(ta.rsi(padded, 14)[7:], ta.rsi(x, 14))


def test_true_range_matches_pandas():
    h, lo, c = DF["high"], DF["low"], DF["close"]
    prev = c.shift()
    want = pd.concat([h - lo, (h - prev).abs(), (lo - prev).abs()], axis=1).max(axis=1)
    assert_close(ta.true_range(h, lo, c), want)


@pytest.mark.parametrize("n", [1, 14, 50])
def test_atr_matches_wilder_reference(n):
    h, lo, c = DF["high"], DF["low"], DF["close"]
    tr = ta.true_range(h, lo, c)
    got = ta.atr(h, lo, c, n)
    assert_close(got, wilder_reference(tr, n, first=0))
    assert got.first_valid_index() == DF.index[n - 1]


# -- bands, MACD, channels ------------------------------------------------------------------------


def test_bollinger_matches_pandas_population_std():
    bb = ta.bollinger(CLOSE, 20, k=2.5)
    mid = CLOSE.rolling(20).mean()
    sd = exact_rolling(CLOSE, 20, std_of(0))
    assert_close(bb.mid, mid)
    assert_close(bb.upper, mid + 2.5 * sd)
    assert_close(bb.lower, mid - 2.5 * sd)
    mid2, upper2, _lower2 = ta.bollinger(CLOSE, 20, ddof=1)  # unpacks like a tuple
    assert_close(upper2, mid2 + 2 * exact_rolling(CLOSE, 20, std_of(1)))


def test_macd_matches_pandas_ewm():
    m = ta.macd(CLOSE, 12, 26, 9)
    line = (
        CLOSE.ewm(span=12, adjust=False, min_periods=12).mean()
        - CLOSE.ewm(span=26, adjust=False, min_periods=26).mean()
    )
    signal = line.ewm(span=9, adjust=False, min_periods=9).mean()
    assert_close(m.line, line)
    assert_close(m.signal, signal)
    assert_close(m.hist, line - signal)


def test_donchian_matches_rolling_max_min():
    ch = ta.donchian(DF["high"], DF["low"], 20)
    assert_close(ch.upper, DF["high"].rolling(20).max(), tol=0)
    assert_close(ch.lower, DF["low"].rolling(20).min(), tol=0)
    assert_close(ch.mid, (ch.upper + ch.lower) / 2)


# -- NaN inside the data ---------------------------------------------------------------------------

GAPPY = CLOSE.copy()
GAPPY.iloc[[0, 1, 40, 41, 42, 500, 1700]] = np.nan


@pytest.mark.parametrize("n", [1, 2, 7, 30])
def test_nan_windows_follow_pandas(n):
    assert_close(ta.sma(GAPPY, n), GAPPY.rolling(n).mean())
    assert_close(ta.rolling_std(GAPPY, n), exact_rolling(GAPPY, n, std_of(1)))
    assert_close(ta.highest(GAPPY, n), GAPPY.rolling(n).max(), tol=0)
    assert_close(ta.lowest(GAPPY, n), GAPPY.rolling(n).min(), tol=0)
    w = np.arange(1, n + 1, dtype=float)
    assert_close(ta.wma(GAPPY, n), exact_rolling(GAPPY, n, lambda a: a @ w / w.sum()))
    assert_close(ta.ema(GAPPY, n), GAPPY.ewm(span=n, adjust=False, min_periods=n).mean())


def test_indicator_of_indicator_starts_after_warmup():
    inner = ta.sma(CLOSE, 10)
    assert_close(ta.sma(inner, 5), inner.rolling(5).mean())
    assert_close(ta.ema(inner, 5), inner.ewm(span=5, adjust=False, min_periods=5).mean())


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.integers(0, 60), elements=st.floats(-1e3, 1e3) | st.just(np.nan)),
    st.integers(1, 12),
)
def test_property_rolling_family_matches_pandas(values, n):
    s = pd.Series(values)
    assert_close(ta.sma(s, n), s.rolling(n).mean(), tol=1e-7)
    assert_close(ta.highest(s, n), s.rolling(n).max(), tol=0)
    assert_close(ta.lowest(s, n), s.rolling(n).min(), tol=0)
    w = np.arange(1, n + 1, dtype=float)
    assert_close(ta.wma(s, n), exact_rolling(s, n, lambda a: a @ w / w.sum()), tol=1e-7)
    assert_close(ta.rolling_std(s, n), exact_rolling(s, n, std_of(1)), tol=1e-7)
    if n != 3:  # pandas 3.1 special-cases alpha=0.5 after NaN gaps; documented in ema_nb
        assert_close(ta.ema(s, n), s.ewm(span=n, adjust=False, min_periods=n).mean(), tol=1e-7)


def test_kernels_are_nogil_and_cached():
    from numba.core.caching import NullCache

    from qlm_kernel.indicators import _kernels

    kernels = [getattr(_kernels, name) for name in dir(_kernels) if name.endswith("_nb")]
    assert len(kernels) >= 12
    for kernel in kernels:
        assert kernel.targetoptions["nogil"] is True
        assert not isinstance(kernel._cache, NullCache)


# -- crossings ------------------------------------------------------------------------------------


def test_crossed_above_below_match_pandas_expression():
    fast, slow = ta.sma(CLOSE, 5), ta.sma(CLOSE, 20)
    above = ta.crossed_above(fast, slow)
    below = ta.crossed_below(fast, slow)
    prev_ok = fast.shift().notna() & slow.shift().notna()
    want_above = (fast > slow) & (fast.shift() <= slow.shift()) & prev_ok
    want_below = (fast < slow) & (fast.shift() >= slow.shift()) & prev_ok
    assert above.dtype == bool and above.index is fast.index
    pd.testing.assert_series_equal(above, want_above, check_names=False)
    pd.testing.assert_series_equal(below, want_below, check_names=False)
    assert above.sum() > 10 and not (above & below).any()


def test_crossed_with_scalar_level_and_nan():
    x = np.array([np.nan, 20.0, 40.0, 25.0, np.nan, 35.0, 28.0, 31.0])
    np.testing.assert_array_equal(ta.crossed_above(x, 30), [0, 0, 1, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(ta.crossed_below(x, 30), [0, 0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(ta.crossed_above(30, x), ta.crossed_below(x, 30))
    assert not ta.crossed_above(x, np.nan).any()
    touch = np.array([29.0, 30.0, 31.0])  # touching the level then leaving it counts once
    np.testing.assert_array_equal(ta.crossed_above(touch, 30.0), [0, 0, 1])


# -- inputs and validation ------------------------------------------------------------------------


def test_series_in_series_out_array_in_array_out():
    s = pd.Series([1.0, 2.0, 3.0, 4.0], index=list("abcd"), name="px")
    out = ta.sma(s, 2)
    assert isinstance(out, pd.Series) and list(out.index) == list("abcd") and out.name == "px"
    arr = ta.sma(np.array([1, 2, 3, 4]), 2)  # ints are fine
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float64
    assert_close(arr, [np.nan, 1.5, 2.5, 3.5])
    assert_close(ta.ema([1.0, 2.0, 3.0], 2), [np.nan, 1 / 3 + 2 * 2 / 3, (1 / 3 + 4 / 3) / 3 + 2])
    nullable = pd.Series([1.0, None, 3.0, 4.0], dtype="Float64")
    assert_close(ta.sma(nullable, 2), [np.nan, np.nan, np.nan, 3.5])
    assert ta.sma(np.array([]), 3).shape == (0,)


@pytest.mark.parametrize("bad", [0, -3, 2.0, 2.5, "5", True, None])
def test_period_must_be_positive_int(bad):
    with pytest.raises(ConfigError) as info:
        ta.sma(CLOSE, bad)
    err = info.value
    assert "period" in err.message and err.hint
    assert err.context["indicator"] == "sma" and err.context["argument"] == "period"


def test_period_checked_everywhere():
    for call in (
        lambda: ta.ema(CLOSE, 0),
        lambda: ta.rsi(CLOSE, 0),
        lambda: ta.atr(DF["high"], DF["low"], CLOSE, 0),
        lambda: ta.macd(CLOSE, 12, 0),
        lambda: ta.donchian(DF["high"], DF["low"], -1),
        lambda: ta.bollinger(CLOSE, 20, k="2"),
        lambda: ta.rolling_std(CLOSE, 5, ddof=-1),
    ):
        with pytest.raises(ConfigError):
            call()
    assert ta.sma(CLOSE, np.int64(3)).notna().sum() == len(CLOSE) - 2
    assert ta.sma(CLOSE, 10_000).isna().all()  # period longer than the data: all warm-up


def test_bad_inputs_are_refused_with_hints():
    with pytest.raises(ConfigError, match="one column") as info:
        ta.sma(DF, 3)
    assert "data['close']" in info.value.hint
    with pytest.raises(ConfigError, match="1-D"):
        ta.sma(np.ones((3, 2)), 2)
    with pytest.raises(ConfigError, match="numbers"):
        ta.sma(pd.Series(["a", "b"]), 1)
    with pytest.raises(ConfigError, match="differ in length"):
        ta.crossed_above(np.ones(3), np.ones(4))
    with pytest.raises(ConfigError, match="different indexes"):
        ta.crossed_above(pd.Series([1.0, 2.0]), pd.Series([1.0, 2.0], index=[5, 6]))


# -- vectorbt (optional oracle) -------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPendingDeprecationWarning")
def test_against_vectorbt():
    vbt = pytest.importorskip("vectorbt")
    n = 14
    assert_close(ta.sma(CLOSE, n), vbt.MA.run(CLOSE, n).ma)
    assert_close(ta.ema(CLOSE, n), vbt.MA.run(CLOSE, n, ewm=True).ma)
    bb = vbt.BBANDS.run(CLOSE, window=20, alpha=2.0)
    ours = ta.bollinger(CLOSE, 20, 2.0)
    assert_close(ours.mid, bb.middle)
    assert_close(ours.upper, bb.upper)
    assert_close(ours.lower, bb.lower)
    atr = vbt.ATR.run(DF["high"], DF["low"], CLOSE, window=2 * n - 1, ewm=True)
    assert_close(ta.true_range(DF["high"], DF["low"], CLOSE), atr.tr)
    # vbt's ewm ATR with span 2n-1 is alpha 1/n but seeded differently: the seed washes out.
    assert_close(ta.atr(DF["high"], DF["low"], CLOSE, n)[600:], atr.atr[600:], tol=1e-9)
    rsi = vbt.RSI.run(CLOSE, window=2 * n - 1, ewm=True).rsi
    assert_close(ta.rsi(CLOSE, n)[600:], rsi[600:], tol=1e-9)
