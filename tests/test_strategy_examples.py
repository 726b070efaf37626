"""The bundled example strategies load by name and produce sensible signals on a random walk."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from qlm_kernel import indicators as ta
from qlm_kernel.strategy import compute_signals, examples_dir, load_strategy, resolve_strategy

EXAMPLES = ["sma_cross", "rsi_reversion", "donchian_breakout"]


def random_ohlc(n: int = 4000, seed: int = 7) -> pd.DataFrame:
    """A geometric random walk with consistent OHLCV bars (high >= open/close >= low)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.012, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, 0.004, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, 0.004, n)))
    volume = rng.integers(1_000, 5_000, n).astype(float)
    index = pd.date_range("2020-01-01", periods=n, freq="h", tz="UTC")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


DATA = random_ohlc()


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_loads_and_gives_bool_signals(name):
    strat = resolve_strategy(name)
    assert type(strat).source_file == str(examples_dir() / f"{name}.py")
    assert type(strat).__doc__ and type(strat).info()["doc"]
    sig = compute_signals(strat, DATA)
    arrays = sig.to_arrays(len(DATA), DATA.index)
    for arr in arrays:
        assert arr.dtype == np.bool_ and arr.shape == (len(DATA),)
    el, xl, es, xs = arrays
    assert 5 < el.sum() < len(DATA) / 2 and xl.sum() > 5
    assert not (el & xl).any() and not (es & xs).any()  # never enter and exit on the same bar
    json.dumps(type(strat).params_spec())
    json.dumps(type(strat).param_space())


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_has_no_lookahead(name):
    strat = resolve_strategy(name)
    full = compute_signals(strat, DATA)
    cut = 2500
    part = compute_signals(strat, DATA.iloc[:cut])
    for a, b in zip(full.to_arrays(len(DATA)), part.to_arrays(cut), strict=True):
        np.testing.assert_array_equal(a[:cut], b)


def test_sma_cross_rule():
    strat = load_strategy(examples_dir() / "sma_cross.py")(fast=5, slow=20)
    sig = compute_signals(strat, DATA)
    fast = DATA["close"].rolling(5).mean()
    slow = DATA["close"].rolling(20).mean()
    up = (fast > slow) & (fast.shift() <= slow.shift())
    down = (fast < slow) & (fast.shift() >= slow.shift())
    np.testing.assert_array_equal(sig.entry_long.to_numpy(), up.to_numpy())
    np.testing.assert_array_equal(sig.exit_long.to_numpy(), down.to_numpy())
    assert sig.entry_short is None and not sig.has_stops


def test_rsi_reversion_rule():
    strat = resolve_strategy("rsi_reversion", period=10, lower=25, upper=75)
    assert strat.lower == 25.0 and isinstance(strat.lower, float)
    sig = compute_signals(strat, DATA)
    rsi = ta.rsi(DATA["close"], 10)
    np.testing.assert_array_equal(sig.entry_long.to_numpy(), (rsi < 25).to_numpy())
    np.testing.assert_array_equal(sig.exit_long.to_numpy(), (rsi > 75).to_numpy())
    assert not sig.entry_long.iloc[:10].any()  # warm-up never signals


def test_donchian_breakout_rule_and_atr_stop():
    strat = resolve_strategy("donchian_breakout", entry=30, exit=12, atr_period=10, atr_mult=3.0)
    sig = compute_signals(strat, DATA)
    h, lo, c = DATA["high"], DATA["low"], DATA["close"]
    prev_hi = h.rolling(30).max().shift()
    prev_lo = lo.rolling(30).min().shift()
    np.testing.assert_array_equal(sig.entry_long.to_numpy(), (c > prev_hi).to_numpy())
    np.testing.assert_array_equal(sig.entry_short.to_numpy(), (c < prev_lo).to_numpy())
    np.testing.assert_array_equal(sig.exit_long.to_numpy(), (c < lo.rolling(12).min().shift()).to_numpy())
    np.testing.assert_array_equal(sig.exit_short.to_numpy(), (c > h.rolling(12).max().shift()).to_numpy())
    assert sig.entry_long.sum() > 5 and sig.entry_short.sum() > 5
    assert not (sig.entry_long & sig.entry_short).any()
    sl, tp, tsl = sig.stop_arrays(len(DATA), DATA.index)
    atr = ta.atr(h, lo, c, 10)
    np.testing.assert_allclose(sl, (3.0 * atr / c).to_numpy(), rtol=1e-12)
    assert np.isnan(sl[:9]).all() and (sl[9:] > 0).all() and (sl[9:] < 0.5).all()
    assert np.isnan(tp[0]) and np.isnan(tsl[0])
