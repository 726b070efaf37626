"""sample_data: deterministic, labelled, regime-switching synthetic bars, and the real backtesting.py sets."""

from __future__ import annotations

import importlib.util
import sys
import time

import numpy as np
import pandas as pd
import pytest

from qlm_kernel.data import OHLCV_COLUMNS, SAMPLE_KINDS, fingerprint_frame, sample_data
from qlm_kernel.data.synthetic import DRIFT_STATES, VOL_SIGMAS, ar1_scan, synthetic_ohlcv
from qlm_kernel.errors import DataError

HAS_BACKTESTING = importlib.util.find_spec("backtesting") is not None


def assert_consistent(df: pd.DataFrame) -> None:
    o, h, lo, c, v = (df[col].to_numpy() for col in OHLCV_COLUMNS)
    assert np.isfinite(df.to_numpy()).all()
    assert (lo > 0).all()
    assert (h >= np.maximum(o, c)).all()
    assert (lo <= np.minimum(o, c)).all()
    assert (v >= 0).all()
    assert df.index.is_monotonic_increasing and df.index.is_unique


def test_schema_and_labels():
    df = sample_data(n=1000, seed=7)
    assert list(df.columns) == list(OHLCV_COLUMNS)
    assert str(df.index.dtype) == "datetime64[ns, UTC]" and df.index.name == "time"
    assert df.attrs["synthetic"] is True
    assert df.attrs["source"] == "qlm synthetic (seed=7)"
    assert df.index[0] == pd.Timestamp("2020-01-01", tz="UTC")
    assert (np.diff(df.index.asi8) == 3600 * 10**9).all()
    assert df["close"].to_numpy().flags.c_contiguous


def test_same_seed_same_frame_and_different_seed_differs():
    a, b = sample_data(n=5000, seed=42), sample_data(n=5000, seed=42)
    pd.testing.assert_frame_equal(a, b)
    assert fingerprint_frame(a) == fingerprint_frame(b)
    assert fingerprint_frame(sample_data(n=5000, seed=43)) != fingerprint_frame(a)


def test_one_million_bars_are_consistent_and_fast():
    sample_data(n=1000)  # warm up
    t0 = time.perf_counter()
    df = sample_data(n=1_000_000, seed=1)
    elapsed = time.perf_counter() - t0
    assert len(df) == 1_000_000
    assert_consistent(df)
    assert elapsed < 3.0  # ~0.25 s here; a generous bound so a loaded CI box does not flake


def test_hundred_thousand_bars_are_quick():
    sample_data(n=1000)
    best = min(_timed(sample_data, n=100_000, seed=s) for s in range(3))
    assert best < 0.25  # ~20 ms here


def _timed(fn, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(**kwargs)
    return time.perf_counter() - t0


def test_volatility_differs_between_regimes():
    bars = synthetic_ohlcv(200_000, seed=5)
    returns = np.diff(np.log(bars.block[3]))
    regime = bars.vol_regime[1:]
    stds = [returns[regime == k].std() for k in range(len(VOL_SIGMAS))]
    assert stds[0] < stds[1] < stds[2]
    assert stds[1] / stds[0] > 1.8 and stds[2] / stds[1] > 1.8
    for k, sigma in enumerate(VOL_SIGMAS):
        assert stds[k] == pytest.approx(sigma, rel=0.15)
    assert len(np.unique(bars.vol_regime)) == 3


def test_drift_regimes_trend_and_mean_revert():
    bars = synthetic_ohlcv(300_000, seed=11)
    log_close = np.log(bars.block[3])
    returns = np.diff(log_close)
    drift = bars.drift_regime[1:]
    up, down, mr = (DRIFT_STATES.index(s) for s in ("up", "down", "mean_revert"))
    assert returns[drift == up].mean() > 0 > returns[drift == down].mean()

    def variance_ratio(state: int, q: int = 20) -> float:
        same = (bars.drift_regime[:-q] == state) & (bars.drift_regime[q:] == state)
        return float((log_close[q:] - log_close[:-q])[same].var() / (q * returns[drift == state].var()))

    assert variance_ratio(mr) < 0.9  # q-bar moves smaller than a random walk's: mean reversion
    assert variance_ratio(mr) < min(variance_ratio(up), variance_ratio(down)) - 0.1


def test_volume_tracks_volatility():
    bars = synthetic_ohlcv(100_000, seed=2)
    volume = bars.block[4]
    means = [volume[bars.vol_regime == k].mean() for k in range(3)]
    assert means[0] < means[1] < means[2]
    moves = np.abs(np.log(bars.block[3] / bars.block[0]))
    assert np.corrcoef(volume, moves)[0, 1] > 0.3


def test_prices_stay_in_a_plausible_range():
    c = synthetic_ohlcv(500_000, seed=9).block[3]
    assert c.min() > 1.0 and c.max() < 10_000.0


def test_ar1_scan_matches_the_recursion():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.0, 0.95, 3000)
    e = rng.standard_normal(3000)
    expected = np.empty_like(e)
    prev = 0.0
    for t in range(e.size):
        prev = a[t] * prev + e[t]
        expected[t] = prev
    np.testing.assert_allclose(ar1_scan(a, e), expected, rtol=1e-12, atol=1e-12)


def test_start_and_calendar_frequencies():
    df = sample_data(n=10, start="2021-06-01 09:30", freq="5min")
    assert df.index[0] == pd.Timestamp("2021-06-01 09:30", tz="UTC")
    assert df.index[1] - df.index[0] == pd.Timedelta("5min")
    business = sample_data(n=10, start="2021-01-01", freq="B")
    assert all(d.weekday() < 5 for d in business.index)
    zoned = sample_data(n=3, start=pd.Timestamp("2021-01-01 10:00", tz="Europe/Berlin"), freq="1D")
    assert zoned.index[0] == pd.Timestamp("2021-01-01 09:00", tz="UTC")


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(DataError) as info:
        sample_data("bitcoin")
    err = info.value
    assert err.context["valid"] == list(SAMPLE_KINDS)
    assert "synthetic" in err.hint and "goog" in err.hint


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"n": 0}, "n must be >= 1"), ({"n": 2.5}, "n must be an integer"), ({"seed": "x"}, "seed"),
     ({"freq": "fortnightly"}, "freq"), ({"start": "not a date"}, "start"),
     ({"n": 1_000_000, "freq": "1D"}, "2262")],
)
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(DataError) as info:
        sample_data(**kwargs)
    assert fragment in info.value.message
    assert info.value.hint


@pytest.mark.skipif(not HAS_BACKTESTING, reason="backtesting not installed")
@pytest.mark.parametrize(("kind", "rows"), [("goog", 2148), ("eurusd", 5000)])
def test_real_samples_from_backtesting(kind, rows):
    df = sample_data(kind)
    assert len(df) == rows
    assert list(df.columns) == list(OHLCV_COLUMNS)
    assert str(df.index.dtype) == "datetime64[ns, UTC]"
    assert df.attrs["synthetic"] is False and "backtesting" in df.attrs["source"]
    assert_consistent(df)
    assert len(sample_data(kind, n=100)) == 100


@pytest.mark.skipif(not HAS_BACKTESTING, reason="backtesting not installed")
def test_goog_values_match_backtesting():
    from backtesting.test import GOOG

    df = sample_data("goog")
    np.testing.assert_array_equal(df["close"].to_numpy(), GOOG["Close"].to_numpy(dtype=float))
    assert df.index[0] == pd.Timestamp("2004-08-19", tz="UTC")


def test_real_samples_without_backtesting_say_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "backtesting", None)  # makes `import backtesting...` fail
    monkeypatch.setitem(sys.modules, "backtesting.test", None)
    with pytest.raises(DataError) as info:
        sample_data("goog")
    assert "pip install backtesting" in info.value.hint


def test_the_sample_catalogue_matches_the_data_it_describes() -> None:
    """Each real sample's stated rows, span and bar size are those of backtesting.py's own data."""
    import backtesting.test as shipped

    from qlm_kernel.data.samples import SAMPLES, sample_catalogue

    bars = {"1 day": pd.Timedelta("1D"), "1 hour": pd.Timedelta("1h")}
    for kind, attr in (("goog", "GOOG"), ("eurusd", "EURUSD"), ("btcusd", "BTCUSD")):
        raw, info = getattr(shipped, attr), SAMPLES[kind]
        assert len(raw) == info["rows"], kind
        start, end = str(info["span"]).split(" to ")
        assert raw.index[0].strftime("%Y-%m-%d") == start and raw.index[-1].strftime("%Y-%m-%d") == end
        steps = raw.index.to_series().diff().dropna()
        if info["bar"] in bars:
            assert steps.min() == bars[info["bar"]], kind  # the bar size (gaps: weekends, nights)
        else:
            assert set(raw.index.is_month_end) == {True}, kind
        frame = sample_data(kind, n=len(raw))
        assert frame.attrs["bar"] == info["bar"] and frame.attrs["licence"].startswith("AGPL-3.0")
    assert [row["kind"] for row in sample_catalogue()] == ["synthetic", "goog", "eurusd", "btcusd"]


def test_qlm_data_list_shows_each_samples_bar_span_and_licence(home, capsys) -> None:
    from qlm_kernel.cli import main

    assert main(["data", "list"]) == 0
    text = capsys.readouterr().out
    assert "bundled samples" in text and "1 month (month-end)" in text and "2012-01-31 to 2024-12-31" in text
    assert "AGPL-3.0" in text and "Apache-2.0" in text
