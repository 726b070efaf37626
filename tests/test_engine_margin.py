"""Ruin and margin: leverage, the maintenance level, liquidation, and what the stats say afterwards.

Levels are computed here from the stated rule (net liquidation value after the exit's slippage and fees
equals maintenance_margin x the position's value), not read back from the engine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qlm_kernel as qlm
from qlm_kernel.errors import ConfigError
from tests import bars
from tests.bars import flags


def frame(close, open_=None, high=None, low=None) -> pd.DataFrame:
    """Daily bars (`tests.bars.frame`)."""
    return bars.frame(close, open_, high, low, freq="1D")


def short_level(units: float, cash: float, *, fees=0.0, slip=0.0, fixed=0.0, mm=0.0) -> float:
    """Price where cash - units * P * (1 + slip) * (1 + fees) - fixed == mm * units * P."""
    return (cash - fixed) / (units * ((1 + slip) * (1 + fees) + mm))


def long_level(units: float, cash: float, *, fees=0.0, slip=0.0, fixed=0.0, mm=0.0) -> float:
    """Price where cash + units * P * (1 - slip) * (1 - fees) - fixed == mm * units * P."""
    return (fixed - cash) / (units * ((1 - slip) * (1 - fees) - mm))


def test_short_is_liquidated_intrabar_at_its_level_and_trades_no_more():
    n = 10
    close = np.array([100, 100, 120, 150, 170, 180, 150, 120, 100, 90.0])
    high = close * 1.01
    high[5] = 260.0  # a wick through the level; the bar closes back at 180
    df = frame(close, high=high, low=close * 0.99)
    sig = qlm.Signals(entry_short=flags(n, 1, 7), exit_short=flags(n, 8))
    res = qlm.backtest(sig, df, fees=0.001, slippage=0.0005, record=False)

    units = res.trades["size"].iloc[0]
    cash = 10_000 + units * 100 * (1 - 0.0005) * (1 - 0.001)
    level = short_level(units, cash, fees=0.001, slip=0.0005)
    assert 190 < level < 200
    trades = res.trades
    assert len(trades) == 1  # the entry on bar 7 never happened
    row = trades.iloc[0]
    assert row["exit_reason"] == "liquidation" and row["exit_bar"] == 5
    assert row["exit_price"] == pytest.approx(level * 1.0005, rel=1e-12)  # the level, slipped
    eq = res.equity.to_numpy()
    assert eq[5] == pytest.approx(0.0, abs=1e-6)  # maintenance 0: nothing left, nothing owed
    assert np.all(eq[5:] == eq[5])
    returns = res.returns.to_numpy()
    assert returns[5] == pytest.approx(-1.0) and np.isnan(returns[6:]).all()  # a dead account has none
    s = res.stats
    assert s["liquidated"] is True and s["final_value"] == pytest.approx(0.0, abs=1e-6)
    assert s["total_return"] == pytest.approx(-1.0) and s["cagr"] == -1.0
    codes = [w["code"] for w in res.warnings]
    assert codes[0] == "LIQUIDATED" and "NEGATIVE_EQUITY" not in codes
    assert str(df.index[5]) in res.warnings[0]["message"]
    assert res.warnings[0]["price"] == row["exit_price"]
    assert res.to_dict()["warnings"][0]["code"] == "LIQUIDATED"


def test_a_gap_through_the_level_fills_at_the_open_and_leaves_a_stated_debt():
    close = np.array([100, 100, 130, 150, 240, 250, 260.0])
    df = frame(close, open_=[100, 100, 130, 150, 230, 250, 260])  # bar 4 opens far above the level
    res = qlm.backtest(qlm.Signals(entry_short=flags(7, 1)), df, record=False)
    row = res.trades.iloc[0]
    assert row["exit_reason"] == "liquidation" and row["exit_bar"] == 4 and row["exit_price"] == 230.0
    units = row["size"]
    assert res.stats["final_value"] == pytest.approx(10_000 + units * 100 - units * 230)
    assert res.stats["final_value"] < 0 and res.stats["total_return"] < -1
    assert [w["code"] for w in res.warnings][:2] == ["LIQUIDATED", "NEGATIVE_EQUITY"]


def test_leverage_sizes_on_buying_power_and_liquidates_a_long():
    close = np.array([100, 100, 95, 90, 80, 60, 70, 90.0])
    open_ = np.concatenate(([100.0], close[:-1]))  # no gaps: bar 5 opens at 80 and falls to 60
    df = frame(close, open_=open_)
    res = qlm.backtest(qlm.Signals(entry_long=flags(8, 1)), df, leverage=3, fees=0.001, record=False)
    units = res.trades["size"].iloc[0]
    assert units == pytest.approx(3 * 10_000 / (100 * 1.001))
    cash = 10_000 - units * 100 * 1.001  # borrowed: negative
    level = long_level(units, cash, fees=0.001)
    assert 60 < level < 80 and level == pytest.approx(100 * (1 - 1 / 3), rel=0.01)
    row = res.trades.iloc[0]
    assert row["exit_reason"] == "liquidation" and row["exit_bar"] == 5
    assert row["exit_price"] == pytest.approx(level, rel=1e-12)
    assert res.stats["final_value"] == pytest.approx(0.0, abs=1e-6)
    # the same fall with the bar opening below the level: filled at that open, a debt
    gap = qlm.backtest(qlm.Signals(entry_long=flags(8, 1)), frame(close), leverage=3, fees=0.001,
                       record=False)
    assert gap.trades["exit_price"].iloc[0] == 60.0 and gap.stats["final_value"] < 0


def test_maintenance_margin_liquidates_earlier_and_leaves_that_margin():
    close = np.array([100, 100, 95, 90, 85, 80, 75, 70, 65.0])
    df = frame(close, high=close, low=close - 2.0)
    res = qlm.backtest(
        qlm.Signals(entry_long=flags(9, 1)), df, leverage=4, maintenance_margin=0.1, record=False
    )
    units = res.trades["size"].iloc[0]
    level = long_level(units, 10_000 - units * 100, mm=0.1)
    row = res.trades.iloc[0]
    first_hit = int(np.flatnonzero(df["low"].to_numpy() <= level)[0])
    assert row["exit_bar"] == first_hit and row["exit_reason"] == "liquidation"
    assert row["exit_price"] == pytest.approx(level, rel=1e-12)
    # what is left is exactly the maintenance margin of the position's value at the level
    assert res.stats["final_value"] == pytest.approx(0.1 * units * level, rel=1e-9)


def test_a_cash_long_is_never_liquidated():
    close = np.linspace(100, 0.5, 50)
    res = qlm.backtest(qlm.Signals(entry_long=flags(50, 0)), frame(close), fees=0.001, record=False)
    assert res.stats["liquidated"] is False and res.trades["status"].iloc[0] == "open"
    assert res.equity.min() > 0


def test_nearer_protective_stop_fills_first_take_profit_never_does():
    close = np.array([100, 100, 100, 100, 100.0])
    # long at 3x: level ~ 66.8. A 10% stop (90) is reached first on a fall to 60.
    low = np.array([100, 100, 60, 100, 100.0])
    df = frame(close, high=close, low=low)
    stopped = qlm.backtest(qlm.Signals(entry_long=flags(5, 1)), df, leverage=3, sl_stop=0.1, record=False)
    assert stopped.trades["exit_reason"].iloc[0] == "stop_loss" and not stopped.stats["liquidated"]
    # a 40% stop (60) lies beyond the level: the liquidation comes first
    wide = qlm.backtest(qlm.Signals(entry_long=flags(5, 1)), df, leverage=3, sl_stop=0.4, record=False)
    assert wide.trades["exit_reason"].iloc[0] == "liquidation" and wide.stats["liquidated"]
    # a bar that touches both the take-profit and the level: pessimistic, liquidation
    high = np.array([100, 100, 120, 100, 100.0])
    both = qlm.backtest(
        qlm.Signals(entry_long=flags(5, 1)), frame(close, high=high, low=low), leverage=3, tp_stop=0.1,
        record=False,
    )
    assert both.trades["exit_reason"].iloc[0] == "liquidation"


def test_statistics_after_ruin_end_at_the_liquidation():
    rng = np.random.default_rng(4)
    close = 100 * np.exp(np.cumsum(rng.normal(0.004, 0.01, 300)))
    df = frame(close, high=close * 1.002, low=close * 0.998)
    res = qlm.backtest(qlm.Signals(entry_short=flags(300, 1)), df, leverage=2, record=False)
    bar = int(res.trades["exit_bar"].iloc[0])
    assert res.stats["liquidated"] and 1 < bar < 299
    eq = res.equity.to_numpy()
    # the returns up to and including the liquidation bar, the first against the initial cash
    r = eq[: bar + 1] / np.concatenate(([10_000.0], eq[:bar])) - 1
    bpy = res.stats["bars_per_year"]
    assert res.stats["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(bpy), rel=1e-9)
    assert res.stats["volatility"] == pytest.approx(r.std(ddof=1) * np.sqrt(bpy), rel=1e-9)
    assert res.stats["max_drawdown"] == pytest.approx(res.drawdown.min(), rel=1e-12)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"leverage": 0.5}, "leverage"),
        ({"leverage": 2, "maintenance_margin": 0.5}, "initial margin"),
        ({"maintenance_margin": 1.0}, "maintenance_margin"),
    ],
)
def test_bad_margin_settings(kw, match):
    with pytest.raises(ConfigError, match=match) as info:
        qlm.backtest(qlm.Signals(), frame([1, 2, 3]), record=False, **kw)
    assert info.value.context["setting"] in ("leverage", "maintenance_margin")


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    leverage=st.floats(1.0, 6.0),
    mm_share=st.floats(0.0, 0.9),
    fill=st.sampled_from(["close", "next_open"]),
    fees=st.sampled_from([0.0, 0.001]),
)
def test_equity_never_goes_below_zero_without_a_gap(seed, leverage, mm_share, fill, fees):
    """Bars open at the previous close (no gaps): every liquidation fills at its level, so the account
    never closes a bar worth less than nothing, and nothing trades after a liquidation."""
    rng = np.random.default_rng(seed)
    n = 200
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.05, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    wick = np.abs(rng.normal(0, 0.03, n))
    df = frame(close, open_=open_, high=np.maximum(open_, close) * (1 + wick),
               low=np.minimum(open_, close) * (1 - wick))
    u = rng.random(n)
    sig = qlm.Signals(entry_long=u < 0.05, exit_long=(u > 0.05) & (u < 0.08), entry_short=u > 0.95,
                      exit_short=(u > 0.9) & (u < 0.92))
    res = qlm.backtest(sig, df, leverage=leverage, maintenance_margin=mm_share / leverage, fill=fill,
                       fees=fees, record=False)
    assert res.equity.min() >= -1e-6 * 10_000
    if res.stats["liquidated"]:
        last = res.trades.iloc[-1]
        assert last["exit_reason"] == "liquidation"
        assert (res.trades["entry_bar"] <= last["exit_bar"]).all()


def test_optimizer_warns_when_its_best_was_liquidated_and_a_constraint_excludes_ruin(tmp_path, monkeypatch):
    monkeypatch.setenv("QLM_HOME", str(tmp_path))
    df = qlm.sample_data("synthetic", n=3000, seed=1)
    space = {"fast": [5, 10, 20], "slow": [30, 50]}
    # at 10x one of the six is ruined; asking for the lowest total return selects it
    worst = qlm.optimize("sma_cross", df, space=space, leverage=10, objective="total_return", maximize=False)
    assert worst.best_stats["liquidated"] and worst.best_value == pytest.approx(-1.0)
    assert worst.warnings[0]["code"] == "LIQUIDATED"
    safe = qlm.optimize("sma_cross", df, space=space, leverage=10, objective="total_return", maximize=False,
                        constraints={"liquidated": ("==", 0)})
    assert int(safe.trials["feasible"].sum()) == 5
    assert not safe.best_stats["liquidated"] and safe.best_params != worst.best_params
    assert all(w["code"] != "LIQUIDATED" for w in safe.warnings)
