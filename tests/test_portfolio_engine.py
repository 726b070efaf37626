"""Portfolio engine properties: one symbol = `qlm.backtest` exactly, equity = cash + positions at the
last close at every bar, nothing trades where a symbol has no bar, the group is liquidated as a whole."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel.errors import DataError, StrategyError
from tests.bars import flags, frame

SETTINGS = [
    {},
    {"fees": 0.001, "slippage": 0.0005},
    {"fill": "next_open", "fees": 0.001},
    {"direction": "both", "fees": 0.002, "fixed_fees": 1.0},
    {"direction": "both", "fill": "next_open", "slippage": 0.001},
    {"size": 0.4, "size_type": "percent", "direction": "both"},
    {"size": 2_500.0, "size_type": "value", "integer": True},
    {"size": 7.0, "size_type": "units", "fill": "next_open"},
    {"sl_stop": 0.02, "tp_stop": 0.04, "direction": "both", "fees": 0.001},
    {"tsl_stop": 0.015, "fill": "next_open", "direction": "both"},
    {"close_at_end": True, "direction": "both"},
    {"leverage": 2.0, "direction": "long", "fees": 0.001},
]


def random_signals(n: int, seed: int, p: float = 0.03) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f: rng.random(n) < p for f in ("entry_long", "exit_long", "entry_short", "exit_short")}


@pytest.fixture(scope="module")
def one():
    return qlm.sample_data("synthetic", n=3000, seed=5)


def label(settings: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in settings.items()) or "default"


@pytest.mark.parametrize("settings", SETTINGS, ids=label)
def test_one_symbol_portfolio_is_the_single_asset_backtest(one, settings):
    sig = random_signals(len(one), 8)
    single = qlm.backtest(qlm.Signals(**sig), one, **settings)
    group = qlm.backtest_portfolio({"X": qlm.Signals(**sig)}, {"X": one}, **settings)
    assert not single.stats["liquidated"] and not group.stats["liquidated"]
    np.testing.assert_array_equal(group.equity.to_numpy(), single.equity.to_numpy())
    ours = group.trades.drop(columns="symbol").sort_values(["entry_bar", "exit_bar"]).reset_index(drop=True)
    theirs = single.trades.sort_values(["entry_bar", "exit_bar"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs)
    assert len(theirs) > 20
    for key in ("final_value", "sharpe", "sortino", "max_drawdown", "max_drawdown_bars", "n_trades",
                "win_rate", "exposure", "fees_paid", "n_orders", "rejected_orders"):
        assert group.stats[key] == single.stats[key] or (
            group.stats[key] != group.stats[key] and single.stats[key] != single.stats[key]), key


def gappy_universe(seed: int = 3) -> tuple[dict[str, pd.DataFrame], object]:
    """Three symbols on different calendars: one hourly, one with holes, one starting late."""
    rng = np.random.default_rng(seed)
    base = {s: qlm.sample_data("synthetic", n=1500, seed=60 + k) for k, s in enumerate(("AAA", "BBB", "CCC"))}
    keep = rng.random(1500) > 0.2
    base["BBB"] = base["BBB"][keep]
    base["CCC"] = base["CCC"].iloc[400:]
    return base, qlm.load_universe(base, name="gappy")


@pytest.mark.parametrize("settings", [
    {"size": 0.3, "size_type": "percent", "fees": 0.001},
    {"size": 0.3, "size_type": "percent", "fill": "next_open", "direction": "both", "slippage": 0.001},
    {"size": 2_000.0, "size_type": "value", "sl_stop": 0.02, "direction": "both"},
    {"leverage": 3.0, "size": 0.5, "size_type": "percent", "direction": "both", "maintenance_margin": 0.05},
], ids=["percent", "next_open_both", "value_stops", "leverage3"])
def test_equity_is_cash_plus_positions_at_last_close_and_no_trade_without_a_bar(settings):
    frames, u = gappy_universe()
    rng = np.random.default_rng(11)
    sig = {s: qlm.Signals(**{f: rng.random(len(df)) < 0.04 for f in ("entry_long", "exit_long", "entry_short",
                                                                     "exit_short")})
           for s, df in frames.items()}
    res = qlm.backtest_portfolio(sig, u, **settings)
    assert res.stats["n_trades"] > 30
    # valuation at each symbol's last close, computed here with pandas (independent of the engine)
    last_close = pd.DataFrame({s: df["close"] for s, df in frames.items()}).reindex(u.index).ffill()
    held = res.position[list(last_close.columns)]
    expected = res.cash + (held * last_close.fillna(0.0)).sum(axis=1)
    end = len(u) if not res.stats["liquidated"] else None
    np.testing.assert_allclose(res.equity.to_numpy()[:end], expected.to_numpy()[:end], rtol=1e-9, atol=1e-6)
    # every order fills on a bar its symbol has
    orders = res.orders
    has = pd.DataFrame(u.has_bar, index=u.index, columns=list(u.symbols))
    assert all(has.iloc[b][s] for b, s in zip(orders["bar"], orders["symbol"].astype(str), strict=True))
    # positions only change on a symbol's own bars
    changed = res.position.diff().fillna(res.position).ne(0.0)
    assert not (changed & ~has).to_numpy().any()
    # fills are at that symbol's own prices (close, open or a stop level within the bar's range)
    for s in u.symbols:
        mine = orders[orders["symbol"] == s]
        df = frames[s].loc[mine["time"]]
        slip = settings.get("slippage", 0.0)
        assert (mine["price"].to_numpy() <= df["high"].to_numpy() * (1 + slip) * (1 + 1e-12)).all()
        assert (mine["price"].to_numpy() >= df["low"].to_numpy() * (1 - slip) * (1 - 1e-12)).all()


def test_next_open_order_waits_for_the_symbols_next_bar():
    a = frame([10, 11, 12, 13, 14, 15], open_=[10, 10.5, 11.5, 12.5, 13.5, 14.5])
    b = frame([20, 21, 22, 23], open_=[20, 20.5, 21.5, 22.5]).iloc[[0, 1, 3]]  # no bar at 02:00 ... 03:00
    b = pd.concat([b, frame([24, 25], open_=[23.5, 24.5]).set_axis(a.index[4:6])])
    res = qlm.backtest_portfolio(
        {"A": qlm.Signals(entry_long=flags(6)), "B": qlm.Signals(entry_long=flags(len(b), 1))},
        {"A": a, "B": b}, fill="next_open", size=1.0, size_type="units",
    )
    (order,) = res.orders.itertuples()
    assert order.symbol == "B"
    assert order.time == b.index[2]  # the signal at 01:00; B's next bar is 03:00 (none at 02:00)
    assert order.price == b["open"].iloc[2]


def test_sells_execute_before_buys_in_a_bar():
    """Full cash in A; on bar 2 A exits and B enters: B is bought with A's proceeds in the same bar."""
    a = frame([10, 10, 12, 12])
    b = frame([5, 5, 5, 5])
    res = qlm.backtest_portfolio(
        {"B": qlm.Signals(entry_long=flags(4, 2)),
         "A": qlm.Signals(entry_long=flags(4, 0), exit_long=flags(4, 2))},
        {"A": a, "B": b}, init_cash=1_000.0,
    )
    orders = res.orders
    buy_b = orders[(orders["symbol"] == "B") & (orders["side"] == "buy")]
    assert len(buy_b) == 1 and buy_b["bar"].iloc[0] == 2
    assert buy_b["size"].iloc[0] == pytest.approx(1_200.0 / 5.0)


def test_short_collateral_is_locked():
    """A cash account shorting A for all its cash cannot also buy B with the short's proceeds."""
    a = frame([10.0] * 4)
    b = frame([5.0] * 4)
    res = qlm.backtest_portfolio(
        {"A": qlm.Signals(entry_short=flags(4, 0)), "B": qlm.Signals(entry_long=flags(4, 1))},
        {"A": a, "B": b}, init_cash=1_000.0, direction="both",
    )
    assert list(res.trades["symbol"].astype(str)) == ["A"]
    assert res.stats["rejected_orders"] == 1


def test_group_is_liquidated_as_a_whole_at_the_close():
    """A 3x long in A and a long in B: A falls far enough that the group's equity hits maintenance."""
    a = frame([100, 100, 90, 60, 35, 80])
    b = frame([50, 50, 50, 50, 55, 60])
    res = qlm.backtest_portfolio(
        {"A": qlm.Signals(entry_long=flags(6, 0)), "B": qlm.Signals(entry_long=flags(6, 1))},
        {"A": a, "B": b}, init_cash=1_000.0, leverage=3.0, maintenance_margin=0.1, size=0.5,
        size_type="percent",
    )
    assert res.stats["liquidated"]
    trades = res.trades
    assert set(trades["exit_reason"]) == {"liquidation"}
    assert set(trades["symbol"].astype(str)) == {"A", "B"}
    bar = int(trades["exit_bar"].iloc[0])
    assert (trades["exit_bar"] == bar).all()
    def at_close(row: int, held_row: int) -> tuple[float, float]:
        """(equity, gross value) of the positions held after ``held_row`` at bar ``row``'s closes."""
        held = res.position.iloc[held_row]
        close = pd.Series({"A": a["close"].iloc[row], "B": b["close"].iloc[row]})
        return res.cash.iloc[held_row] + float((held * close).sum()), float((held.abs() * close).sum())

    equity, gross = at_close(bar, bar - 1)
    assert equity <= 0.1 * gross  # the rule held on the liquidation bar
    equity, gross = at_close(bar - 1, bar - 1)
    assert equity == pytest.approx(res.equity.iloc[bar - 1]) and equity > 0.1 * gross  # not the bar before
    assert (res.equity.iloc[bar:] == res.equity.iloc[bar]).all()
    assert res.warnings[0]["code"] == "LIQUIDATED"


def test_strategy_applied_to_every_symbol_equals_its_signals():
    frames = {s: qlm.sample_data("synthetic", n=1200, seed=70 + k) for k, s in enumerate(("X", "Y"))}
    by_strategy = qlm.backtest_portfolio("sma_cross", frames, fast=5, slow=20, size=0.4, size_type="percent")
    strat = qlm.load_strategy("sma_cross")(fast=5, slow=20)
    signals = {s: strat.signals(df) for s, df in frames.items()}
    by_signals = qlm.backtest_portfolio(signals, frames, size=0.4, size_type="percent")
    np.testing.assert_array_equal(by_strategy.equity.to_numpy(), by_signals.equity.to_numpy())
    assert by_strategy.params == {"fast": 5, "slow": 20}
    assert by_strategy.stats["n_trades"] > 10


def test_bad_input_is_named():
    frames = {"AAPL": frame([1, 2, 3]), "MSFT": frame([3, 2, 1])}
    with pytest.raises(StrategyError) as err:
        qlm.backtest_portfolio({"APPL": qlm.Signals(entry_long=flags(3, 0))}, frames)
    assert "did you mean 'AAPL'" in err.value.hint
    u = qlm.load_universe(frames)
    wide = pd.DataFrame({"AAPL": [1.0, 0.0, 0.0], "MSFT": [0.0] * 3}, index=u.index)
    with pytest.raises(StrategyError, match="boolean"):
        qlm.backtest_portfolio(qlm.Signals(entry_long=wide), u)
    with pytest.raises(DataError, match="Universe"):
        qlm.backtest_portfolio("sma_cross", 42)
    assert err.value.to_dict()["code"] == "UNKNOWN_SYMBOL"


def test_benchmark_and_symbol_stats_recomputed_from_the_tables():
    frames, u = gappy_universe(5)
    res = qlm.backtest_portfolio("sma_cross", u, fast=5, slow=20, size=0.3, size_type="percent", fees=0.001,
                                 direction="both", record=False)
    own = [df["close"].iloc[-1] / df["close"].iloc[0] for df in frames.values()]
    assert res.stats["benchmark_return"] == pytest.approx(np.mean(own) - 1.0, rel=1e-12)
    assert res._close[-1] == pytest.approx(np.mean(own), rel=1e-12)  # the plotted index ends there too
    table = res.symbol_stats
    trades = res.trades.assign(symbol=res.trades["symbol"].astype(str))
    for sym, group in trades.groupby("symbol"):
        row = table.loc[sym]
        closed = group[group["status"] == "closed"]
        assert row["n_trades"] == len(group) and row["n_closed"] == len(closed)
        assert row["pnl"] == pytest.approx(group["pnl"].sum(), rel=1e-12)
        assert row["win_rate"] == pytest.approx((closed["pnl"] > 0).mean())
        close = frames[sym]["close"]
        assert row["buy_hold_return"] == pytest.approx(close.iloc[-1] / close.iloc[0] - 1)
    assert table["pnl"].sum() == pytest.approx(res.stats["final_value"] - 10_000.0, rel=1e-9)


def test_a_bad_price_names_the_symbol_and_time():
    from qlm_kernel.data.universe import Universe

    good = frame([10.0, 11, 12, 13])
    bad = frame([5.0, 5, 0.0, 5])  # built directly, past the loaders' validation
    u = Universe("raw", {"A": good, "B": bad})
    with pytest.raises(DataError) as err:
        qlm.backtest_portfolio({"B": qlm.Signals(entry_long=flags(4, 0))}, u, record=False)
    assert err.value.context["symbol"] == "B" and str(bad.index[2]) in str(err.value)


@pytest.mark.parametrize("fill", ["close", "next_open"])
@pytest.mark.parametrize("late", [False, True], ids=["all_born", "one_born_late"])
def test_a_bad_close_stops_the_run_in_either_fill_mode(fill, late):
    """The kernel checks a bar's closes while it marks the bar to market; a symbol whose first bar is
    still ahead (NaN valuation) is not a bad price, a bad close of another symbol is."""
    from qlm_kernel.data.universe import Universe

    good = frame([10.0, 11, 12, 13, 14, 15])
    bad = frame([5.0, 5, 5, 5, -1.0, 5])  # built directly, past the loaders' validation
    late_one = frame([7.0, 7, 7, 7, 7, 7]).iloc[3:] if late else frame([7.0] * 6)
    u = Universe("raw", {"A": good, "B": bad, "C": late_one})
    with pytest.raises(DataError) as err:
        qlm.backtest_portfolio({"A": qlm.Signals(entry_long=flags(6, 0))}, u, fill=fill, record=False)
    assert err.value.context["symbol"] == "B" and str(bad.index[4]) in str(err.value)
    assert err.value.context["column"] == "close"
    ok = Universe("fine", {"A": good, "C": late_one})  # the late symbol alone is not an error
    res = qlm.backtest_portfolio({"C": qlm.Signals(entry_long=flags(len(late_one), 0))}, ok, fill=fill,
                                 size=1.0, size_type="units", record=False)
    assert res.trades["symbol"].tolist() == ["C"]
    assert np.isfinite(res.equity.to_numpy()).all()


def test_one_symbol_liquidation_is_the_single_asset_liquidation():
    """The issue's own ruin case (donchian on btcusd, next open) through a one-symbol portfolio."""
    btc = qlm.sample_data("btcusd")
    single = qlm.backtest("donchian_breakout", btc, fill="next_open", record=False)
    group = qlm.backtest_portfolio("donchian_breakout", {"BTC": btc}, fill="next_open", record=False)
    assert single.stats["liquidated"] and group.stats["liquidated"]
    np.testing.assert_array_equal(group.equity.to_numpy(), single.equity.to_numpy())
    pd.testing.assert_frame_equal(group.trades.drop(columns="symbol"), single.trades)
    assert group.trades["exit_reason"].iloc[-1] == "liquidation"


def test_group_liquidation_inside_the_bar_at_the_margin_point():
    """Two 2x longs; bar 2 opens fine and wicks down: the group is liquidated where its margin after
    exit costs reaches zero, both positions on the same straight path from open to low."""
    a = frame([100, 100, 99, 99], open_=[100, 100, 100, 99], low=[100, 100, 30, 99])
    b = frame([50, 50, 49, 49], open_=[50, 50, 50, 49], low=[50, 50, 20, 49])
    settings = {"init_cash": 1_000.0, "leverage": 2.0, "maintenance_margin": 0.2, "fees": 0.001,
                "slippage": 0.001, "size": 0.5, "size_type": "percent"}
    res = qlm.backtest_portfolio(
        {"A": qlm.Signals(entry_long=flags(4, 0)), "B": qlm.Signals(entry_long=flags(4, 0))},
        {"A": a, "B": b}, record=False, **settings,
    )
    trades = res.trades.set_index(res.trades["symbol"].astype(str))
    assert set(trades["exit_reason"]) == {"liquidation"} and (trades["exit_bar"] == 2).all()
    # the margin left along the way: cash + units * price * kept, linear in the path's t
    cash = res.cash.iloc[1]
    units = trades["size"]
    kept = (1 - 0.001) * (1 - 0.001) - 0.2
    start = cash + kept * (units["A"] * 100 + units["B"] * 50)
    end = cash + kept * (units["A"] * 30 + units["B"] * 20)
    assert start > 0 >= end
    t = start / (start - end)
    for sym, (o, low) in {"A": (100, 30), "B": (50, 20)}.items():
        expected = (o + t * (low - o)) * (1 - 0.001)  # the exit's slippage
        assert trades.loc[sym, "exit_price"] == pytest.approx(expected, rel=1e-12)
    nlv = res.cash.iloc[2]
    gross = float((units * pd.Series({"A": 100 + t * -70, "B": 50 + t * -30})).sum())
    assert nlv == pytest.approx(0.2 * gross, rel=1e-9)  # what is left is the maintenance margin
