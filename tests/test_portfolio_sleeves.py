"""Several strategies in one portfolio (`qlm.Sleeve`): own cash per sleeve = the sum of separate
portfolio runs with weight x init_cash; shared cash = one group whose columns are SLEEVE.SYMBOL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel.errors import ConfigError, DataError

SETTINGS = {"size": 0.5, "size_type": "percent", "fees": 0.001, "record": False}


@pytest.fixture(scope="module")
def frames():
    out = {s: qlm.sample_data("synthetic", n=1500, seed=90 + k) for k, s in enumerate(("AAA", "BBB", "CCC"))}
    out["CCC"] = out["CCC"].iloc[300:]  # starts late
    return out


@pytest.fixture(scope="module")
def universe(frames):
    return qlm.load_universe(frames, name="trio")


def sleeves(weights=(0.6, 0.3)):
    return [
        qlm.Sleeve("sma_cross", ["AAA", "BBB"], weight=weights[0], name="trend", fast=5, slow=30),
        qlm.Sleeve("sma_cross", ["BBB", "CCC"], weight=weights[1], name="slow", fast=20, slow=80),
    ]


def test_own_cash_per_sleeve_is_the_sum_of_separate_portfolios(frames, universe):
    res = qlm.backtest_portfolio(sleeves(), universe, cash="sleeves", **SETTINGS)
    a = qlm.backtest_portfolio(
        "sma_cross", {s: frames[s] for s in ("AAA", "BBB")}, fast=5, slow=30, init_cash=6_000.0, **SETTINGS
    )
    b = qlm.backtest_portfolio(
        "sma_cross", {s: frames[s] for s in ("BBB", "CCC")}, fast=20, slow=80, init_cash=3_000.0, **SETTINGS
    )
    eq_b = b.equity.reindex(universe.index).ffill().fillna(3_000.0)
    expected = a.equity + eq_b + 1_000.0  # a tenth of the capital was given to no sleeve: it stays cash
    np.testing.assert_allclose(res.equity.to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert res.stats["n_trades"] == a.stats["n_trades"] + b.stats["n_trades"]
    table = res.sleeve_stats
    assert table.loc["trend", "final_value"] == pytest.approx(a.stats["final_value"], rel=1e-12)
    assert table.loc["slow", "capital"] == 3_000.0
    trades = res.trades
    assert set(trades["sleeve"]) == {"trend", "slow"}
    assert set(trades.loc[trades["sleeve"] == "slow", "symbol"]) <= {"BBB", "CCC"}
    ours = trades[trades["sleeve"] == "slow"].sort_values(["entry_time", "symbol"])
    theirs = b.trades.sort_values(["entry_time", "symbol"])
    np.testing.assert_allclose(ours["pnl"].to_numpy(), theirs["pnl"].to_numpy(), rtol=1e-12)
    assert (ours["entry_time"].to_numpy() == theirs["entry_time"].to_numpy()).all()


def test_shared_cash_one_sleeve_is_the_plain_portfolio(frames, universe):
    one = qlm.backtest_portfolio(
        [qlm.Sleeve("sma_cross", ["AAA", "BBB"], name="t", fast=5, slow=30)], universe, **SETTINGS
    )
    plain = qlm.backtest_portfolio(
        "sma_cross", {s: frames[s] for s in ("AAA", "BBB")}, fast=5, slow=30, **SETTINGS
    )
    np.testing.assert_array_equal(
        one.equity.to_numpy(), plain.equity.reindex(universe.index).ffill().to_numpy()
    )


def test_shared_cash_two_sleeves_hold_the_same_symbol_apart(frames, universe):
    weights = (1.0, 1.0)
    res = qlm.backtest_portfolio(sleeves(weights), universe, **SETTINGS)
    assert res.symbols == ("slow.BBB", "slow.CCC", "trend.AAA", "trend.BBB")
    held = res.position
    both = (held["slow.BBB"] != 0) & (held["trend.BBB"] != 0)
    assert both.any()  # the same symbol held by two sleeves at once, as two positions
    close = (
        pd.DataFrame({c: frames[c.split(".")[1]]["close"] for c in res.symbols})
        .reindex(universe.index)
        .ffill()
    )
    expected = res.cash + (held * close.fillna(0.0)).sum(axis=1)
    np.testing.assert_allclose(res.equity.to_numpy(), expected.to_numpy(), rtol=1e-9)


def test_sleeve_errors_are_named(universe):
    with pytest.raises(ConfigError, match=r"add up to 1\.2"):
        qlm.backtest_portfolio(sleeves((0.8, 0.4)), universe, cash="sleeves", record=False)
    with pytest.raises(ConfigError, match="cash='sleeves'"):
        qlm.backtest_portfolio(sleeves(), universe, record=False)  # weights with one shared balance
    with pytest.raises(ConfigError, match="named 'x'"):
        qlm.backtest_portfolio(
            [qlm.Sleeve("sma_cross", name="x"), qlm.Sleeve("sma_cross", name="x")], universe, record=False
        )
    with pytest.raises(DataError, match="did you mean 'AAA'"):
        qlm.backtest_portfolio([qlm.Sleeve("sma_cross", ["AAB"])], universe, record=False)
    with pytest.raises(ConfigError, match="go in each Sleeve"):
        qlm.backtest_portfolio([qlm.Sleeve("sma_cross")], universe, fast=5, record=False)
    with pytest.raises(ConfigError, match="applies to sleeves"):
        qlm.backtest_portfolio("sma_cross", universe, cash="sleeves", record=False)
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        qlm.Sleeve("sma_cross", weight=1.5)
