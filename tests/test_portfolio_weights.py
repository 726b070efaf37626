"""Target-weight rebalancing against vectorbt's ``Portfolio.from_orders(size_type="targetpercent",
cash_sharing=True, group_by=True, call_seq="auto")``, and its calendar, drift and sizing rules."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel.errors import ConfigError, StrategyError

vbt = pytest.importorskip("vectorbt")

REL = 1e-9


@pytest.fixture(scope="module")
def universe():
    frames = {f"S{j}": qlm.sample_data("synthetic", n=2000, seed=80 + j) for j in range(4)}
    return qlm.load_universe(frames, name="four")


def random_weights(u, every: int, seed: int, gross: float = 0.95, shorts: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n, m = u.close.shape
    w = np.full((n, m), np.nan)
    rows = np.arange(0, n, every)
    raw = rng.random((len(rows), m))
    raw = raw / raw.sum(axis=1, keepdims=True) * gross
    if shorts:
        raw *= np.where(rng.random(raw.shape) < 0.4, -1.0, 1.0)
    w[rows] = raw
    return pd.DataFrame(w, index=u.index, columns=list(u.symbols))


def run_vbt(u, weights: pd.DataFrame, **kw):
    """vectorbt's run; ``lock_cash=True`` is QLM's cash account (a short's collateral is set aside)."""
    close = pd.DataFrame(u.close, index=u.index, columns=list(u.symbols))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return vbt.Portfolio.from_orders(
            close,
            weights,
            size_type="targetpercent",
            cash_sharing=True,
            group_by=True,
            call_seq="auto",
            init_cash=10_000.0,
            freq="1h",
            **kw,
        )


def assert_same(pf, res) -> None:
    assert res.stats["final_value"] == pytest.approx(pf.final_value(), rel=REL)
    np.testing.assert_allclose(res.equity.to_numpy(), pf.value().to_numpy(), rtol=REL)
    theirs = pf.orders.records_readable.sort_values(["Timestamp", "Column"], kind="stable")
    ours = res.orders.sort_values(["time", "symbol"], kind="stable")
    assert len(ours) == len(theirs) > 50
    assert (ours["time"].to_numpy() == theirs["Timestamp"].to_numpy()).all()
    assert (ours["symbol"].astype(str).to_numpy() == theirs["Column"].astype(str).to_numpy()).all()
    assert (ours["side"].to_numpy() == theirs["Side"].str.lower().to_numpy()).all()
    np.testing.assert_allclose(ours["size"], theirs["Size"], rtol=REL)
    np.testing.assert_allclose(ours["price"], theirs["Price"], rtol=REL)
    np.testing.assert_allclose(ours["fees"], theirs["Fees"], rtol=REL, atol=1e-9)
    t_ours = res.trades
    t_theirs = pf.trades.records_readable  # exit trades: one per reduction, average entry price
    assert len(t_ours) == len(t_theirs)
    t_ours = t_ours.assign(_open=t_ours["status"] == "open")
    key_ours = t_ours.sort_values(["symbol", "_open", "exit_bar"]).reset_index(drop=True)
    t_theirs = t_theirs.assign(_open=t_theirs["Status"] == "Open")
    key_theirs = t_theirs.sort_values(["Column", "_open", "Exit Timestamp"]).reset_index(drop=True)
    np.testing.assert_allclose(key_ours["pnl"], key_theirs["PnL"], rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(key_ours["entry_price"], key_theirs["Avg Entry Price"], rtol=REL)


@pytest.mark.parametrize(
    "costs", [{}, {"fees": 0.001}, {"fees": 0.002, "slippage": 0.0005}], ids=["free", "fees", "fees+slippage"]
)
def test_rebalancing_matches_vectorbt(universe, costs):
    w = random_weights(universe, 24, 1)
    res = qlm.backtest_portfolio(qlm.TargetWeights(w), universe, **costs)
    assert_same(run_vbt(universe, w, **costs), res)


def test_long_short_weights_match_vectorbt(universe):
    """Shorts set their collateral aside: vectorbt's ``lock_cash=True``."""
    w = random_weights(universe, 12, 2, gross=0.8, shorts=True)
    res = qlm.backtest_portfolio(qlm.TargetWeights(w), universe, fees=0.001)
    assert_same(run_vbt(universe, w, fees=0.001, lock_cash=True), res)
    assert (res.trades["direction"] == "short").sum() > 20


def test_fixed_fees_and_fully_invested(universe):
    """Weights summing to 1 with fees: buys are partially filled with the cash left (as vectorbt)."""
    w = random_weights(universe, 48, 3, gross=1.0)
    assert_same(
        run_vbt(universe, w, fees=0.001, fixed_fees=1.0),
        qlm.backtest_portfolio(qlm.TargetWeights(w), universe, fees=0.001, fixed_fees=1.0),
    )


def test_monthly_calendar_trades_on_each_months_first_bar(universe):
    first = pd.DataFrame({s: [0.25] for s in universe.symbols}, index=[universe.index[0]])
    res = qlm.backtest_portfolio(qlm.TargetWeights(first, rebalance="M"), universe, fees=0.001)
    months = universe.index.tz_convert("UTC").tz_localize(None).to_period("M")
    month_starts = set(universe.index[np.r_[True, months[1:] != months[:-1]]])
    traded = set(res.orders["time"])
    assert traded <= month_starts and len(traded) >= len(month_starts) - 1
    # the same run through vectorbt with the weights written on those bars
    w = pd.DataFrame(np.nan, index=universe.index, columns=list(universe.symbols))
    w.loc[sorted(month_starts)] = 0.25
    assert_same_value = run_vbt(universe, w, fees=0.001).final_value()
    assert res.stats["final_value"] == pytest.approx(assert_same_value, rel=REL)


def test_drift_threshold_trades_only_drifted_symbols_back_to_target(universe):
    first = pd.DataFrame({s: [0.24] for s in universe.symbols}, index=[universe.index[0]])
    res = qlm.backtest_portfolio(qlm.TargetWeights(first, drift=0.02), universe)
    orders = res.orders
    assert len(orders) > 10
    later = orders[orders["bar"] > 0]
    weights = res.weights
    for bar, sym in zip(later["bar"], later["symbol"].astype(str), strict=True):
        # before the trade the symbol was more than 2 points off its target; after it, on target
        held = res.position[sym].iloc[bar - 1]
        value = res.cash.iloc[bar - 1] + (res.position.iloc[bar - 1] * universe.close[bar]).sum()
        before = held * universe.close[bar, universe.column(sym)] / value
        assert abs(before - 0.24) > 0.02
        assert weights[sym].iloc[bar] == pytest.approx(0.24, abs=1e-9)
        assert value > 0
    # between trades every symbol stays within the band at each close where it was checked
    drifted = (weights - 0.24).abs() > 0.02 + 1e-9
    assert not drifted.to_numpy()[1:].any()


def test_next_open_and_integer_units(universe):
    w = random_weights(universe, 24, 4)
    res = qlm.backtest_portfolio(qlm.TargetWeights(w), universe, fill="next_open", integer=True)
    orders = res.orders
    assert (orders["size"] == np.round(orders["size"])).all()
    rows = np.flatnonzero(~np.isnan(w.to_numpy()).all(axis=1))
    assert set(orders["bar"]) <= set(rows + 1)  # the bar after each target row, at its open
    sample = orders.iloc[0]
    assert sample["price"] == universe.open[sample["bar"], universe.column(str(sample["symbol"]))]
    held = res.position
    expected = res.cash + (held * universe.valuation_close).sum(axis=1)
    np.testing.assert_allclose(res.equity.to_numpy(), expected.to_numpy(), rtol=1e-9)


def test_bad_weights_are_named(universe):
    w = pd.DataFrame({"S9": [0.5]}, index=[universe.index[0]])
    with pytest.raises(StrategyError, match="S9"):
        qlm.backtest_portfolio(qlm.TargetWeights(w), universe)
    off = pd.DataFrame({"S0": [0.5]}, index=[universe.index[0] + pd.Timedelta(minutes=1)])
    with pytest.raises(StrategyError, match="not a bar of the universe") as err:
        qlm.backtest_portfolio(qlm.TargetWeights(off), universe)
    assert "rebalance=" in err.value.hint
    with pytest.raises(ConfigError, match="sl_stop"):
        qlm.backtest_portfolio(qlm.TargetWeights(w.rename(columns={"S9": "S0"})), universe, sl_stop=0.1)
    with pytest.raises(ConfigError, match="calendar period"):
        fine = w.rename(columns={"S9": "S0"})
        qlm.backtest_portfolio(qlm.TargetWeights(fine, rebalance="fortnight"), universe)


def test_levered_weights_are_liquidated_inside_the_bar_as_signal_portfolios_are():
    from tests.bars import frame

    a = frame([100, 100, 99, 99], open_=[100, 100, 100, 99], low=[100, 100, 30, 99])
    b = frame([50, 50, 49, 49], open_=[50, 50, 50, 49], low=[50, 50, 20, 49])
    u = qlm.load_universe({"A": a, "B": b}, name="pair")
    w = pd.DataFrame({"A": [1.0], "B": [0.9]}, index=[u.index[0]])
    res = qlm.backtest_portfolio(
        qlm.TargetWeights(w), u, init_cash=1_000.0, leverage=2.0, maintenance_margin=0.2, record=False
    )
    assert res.stats["liquidated"]
    exits = res.orders[res.orders["kind"] == "liquidation"].set_index(
        res.orders["symbol"].astype(str)[res.orders["kind"] == "liquidation"]
    )
    units = res.position.iloc[1]
    cash = res.cash.iloc[1]
    start = cash + 0.8 * (units["A"] * 100 + units["B"] * 50)
    end = cash + 0.8 * (units["A"] * 30 + units["B"] * 20)
    t = start / (start - end)
    assert exits.loc["A", "price"] == pytest.approx(100 - 70 * t, rel=1e-12)
    assert exits.loc["B", "price"] == pytest.approx(50 - 30 * t, rel=1e-12)
    assert (res.position.iloc[2:] == 0).all().all() and res.warnings[0]["code"] == "LIQUIDATED"
