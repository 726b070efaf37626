"""Property tests (hypothesis): bookkeeping reconciles, no signals means no change, fees never help."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qlm_kernel as qlm

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def market(draw, min_bars: int = 5, max_bars: int = 120):
    """A random but consistent OHLC path and four random signal arrays."""
    n = draw(st.integers(min_bars, max_bars))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    vol = draw(st.floats(0.001, 0.05))
    close = 100 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    open_ = np.concatenate(([close[0]], close[:-1])) * np.exp(rng.normal(0, vol / 3, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, vol, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, vol, n))
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="time")
    df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 1.0}, index=index)
    p = draw(st.floats(0.02, 0.4))
    sig = {k: rng.random(n) < p for k in ("entry_long", "exit_long", "entry_short", "exit_short")}
    return df, qlm.Signals(**sig)


backtest_settings = st.fixed_dictionaries(
    {
        "fill": st.sampled_from(["close", "next_open"]),
        "fees": st.sampled_from([0.0, 0.0005, 0.003]),
        "fixed_fees": st.sampled_from([0.0, 1.0]),
        "slippage": st.sampled_from([0.0, 0.001]),
        "direction": st.sampled_from(["long", "short", "both"]),
        "integer": st.booleans(),
        "sl_stop": st.sampled_from([None, 0.01, 0.05]),
        "tp_stop": st.sampled_from([None, 0.02]),
        "tsl_stop": st.sampled_from([None, 0.03]),
        "close_at_end": st.booleans(),
    }
)


@SETTINGS
@given(market(), backtest_settings)
def test_equity_is_cash_plus_position_value_at_every_bar(mkt, kw):
    """The kernel's equity equals cash + units x close rebuilt from the order ledger alone."""
    df, signals = mkt
    res = qlm.backtest(signals, df, **kw)
    rebuilt = res.cash.to_numpy() + res.position.to_numpy() * df["close"].to_numpy()
    np.testing.assert_allclose(res.equity.to_numpy(), rebuilt, rtol=1e-9, atol=1e-6)
    trades = res.trades
    assert res.stats["final_value"] == np.float64(res.equity.iloc[-1])
    assert np.isclose(res.stats["fees_paid"], trades["fees"].sum(), rtol=1e-12)
    # each trade's pnl reconciles with its prices, size and fees
    sign = np.where(trades["direction"] == "long", 1.0, -1.0)
    pnl = sign * trades["size"] * (trades["exit_price"] - trades["entry_price"]) - trades["fees"]
    np.testing.assert_allclose(trades["pnl"], pnl, rtol=1e-9, atol=1e-9)
    if kw["close_at_end"]:
        assert (trades["status"] == "closed").all()


@SETTINGS
@given(market(), backtest_settings)
def test_no_signals_leaves_cash_untouched(mkt, kw):
    df, _ = mkt
    res = qlm.backtest(qlm.Signals(), df, **kw)
    assert res.stats["n_trades"] == 0
    assert (res.equity.to_numpy() == 10_000.0).all()


@SETTINGS
@given(
    market(),
    st.sampled_from(["close", "next_open"]),
    st.sampled_from(["long", "both"]),
    st.sampled_from([None, 1.0]),
    st.floats(0.0, 0.01),
    st.floats(0.0, 0.01),
)
def test_higher_fees_never_raise_final_value(mkt, fill, direction, units, fee_a, fee_b):
    """Fractional sizing: all cash, or fixed units small enough to always be affordable."""
    df, signals = mkt
    low, high = sorted((fee_a, fee_b))
    kw = {"fill": fill, "direction": direction, "size": units}
    cheap = qlm.backtest(signals, df, fees=low, **kw).stats["final_value"]
    dear = qlm.backtest(signals, df, fees=high, **kw).stats["final_value"]
    assert dear <= cheap * (1 + 1e-12)
