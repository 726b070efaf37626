"""The engine against backtesting.py (fill at the next open, whole units, exclusive orders).

Real data shipped with backtesting.py: daily GOOG (2004-2013) and hourly EURUSD. Same trades
(entry/exit bars, sizes, prices) and final equity equal within 1e-6 relative.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel import indicators as ta

backtesting = pytest.importorskip("backtesting")
from backtesting import Backtest, Strategy  # noqa: E402
from backtesting.test import EURUSD, GOOG  # noqa: E402

REL = 1e-6
RAW = {"goog": GOOG, "eurusd": EURUSD}


def run_backtesting(
    raw: pd.DataFrame, sig: dict[str, np.ndarray], commission: float, cash: float, margin: float = 1.0
):
    """backtesting.py mirroring our signal rules: enter/reverse on entries, close on exits
    (``margin`` = 1 / leverage)."""

    class Mirror(Strategy):
        def init(self):
            pass

        def next(self):
            i = len(self.data) - 1
            pos = self.position
            if sig["entry_long"][i] and not pos.is_long:
                self.buy()
            elif sig["entry_short"][i] and not pos.is_short:
                self.sell()
            elif (sig["exit_long"][i] and pos.is_long) or (sig["exit_short"][i] and pos.is_short):
                pos.close()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(raw, Mirror, cash=cash, commission=commission, exclusive_orders=True, margin=margin)
        return bt.run()


def disjoint_signals(n: int, seed: int, short: bool, p: float = 0.03) -> dict[str, np.ndarray]:
    """At most one signal per bar, none on bar 0 (backtesting.py starts acting on bar 1)."""
    u = np.random.default_rng(seed).random(n)
    sig = {
        "entry_long": u < p,
        "exit_long": (u >= p) & (u < 2 * p),
        "entry_short": (u >= 2 * p) & (u < 3 * p) if short else np.zeros(n, bool),
        "exit_short": (u >= 3 * p) & (u < 4 * p) if short else np.zeros(n, bool),
    }
    for arr in sig.values():
        arr[0] = False
    return sig


def assert_same(stats, res) -> None:
    assert res.stats["final_value"] == pytest.approx(stats["Equity Final [$]"], rel=REL)
    theirs = stats._trades
    ours = res.trades[res.trades["status"] == "closed"]
    assert len(ours) == len(theirs) > 0
    np.testing.assert_array_equal(ours["entry_bar"].to_numpy(), theirs["EntryBar"].to_numpy())
    np.testing.assert_array_equal(ours["exit_bar"].to_numpy(), theirs["ExitBar"].to_numpy())
    signed = np.where(ours["direction"] == "long", 1, -1) * ours["size"].to_numpy()
    np.testing.assert_array_equal(signed, theirs["Size"].to_numpy())
    np.testing.assert_allclose(ours["entry_price"], theirs["EntryPrice"], rtol=1e-12)
    np.testing.assert_allclose(ours["exit_price"], theirs["ExitPrice"], rtol=1e-12)


@pytest.mark.parametrize("kind", ["goog", "eurusd"])
@pytest.mark.parametrize("short", [False, True], ids=["long", "long_short"])
@pytest.mark.parametrize("commission", [0.0, 0.002])
def test_random_signals_real_data(kind, short, commission):
    df = qlm.sample_data(kind)
    sig = disjoint_signals(len(df), seed=5, short=short)
    stats = run_backtesting(RAW[kind], sig, commission, 10_000.0)
    res = qlm.backtest(
        qlm.Signals(**sig), df, fill="next_open", integer=True, fees=commission, init_cash=10_000.0
    )
    assert_same(stats, res)


@pytest.mark.parametrize("fast,slow", [(10, 20), (5, 30), (20, 60)])
@pytest.mark.parametrize("kind,cash", [("goog", 10_000.0), ("eurusd", 100_000.0)])
def test_sma_cross_strategy(kind, cash, fast, slow):
    df = qlm.sample_data(kind)
    close = df["close"]
    f, s = ta.sma(close, fast), ta.sma(close, slow)
    n = len(df)
    sig = {
        "entry_long": ta.crossed_above(f, s).to_numpy().copy(),
        "exit_long": ta.crossed_below(f, s).to_numpy().copy(),
        "entry_short": np.zeros(n, bool),
        "exit_short": np.zeros(n, bool),
    }
    stats = run_backtesting(RAW[kind], sig, 0.001, cash)
    res = qlm.backtest(
        "sma_cross", df, fast=fast, slow=slow, fill="next_open", integer=True, fees=0.001, init_cash=cash
    )
    assert_same(stats, res)


@pytest.mark.parametrize("kind", ["goog", "eurusd"])
@pytest.mark.parametrize("leverage", [2.0, 4.0])
def test_leverage_matches_backtesting_margin(kind, leverage):
    """Leverage L is backtesting.py's margin=1/L: the same sizes on L x the free cash, the same trades
    and final equity, as long as neither account is ruined."""
    df = qlm.sample_data(kind)
    sig = disjoint_signals(len(df), seed=10, short=True)  # a seed neither account is ruined on
    stats = run_backtesting(RAW[kind], sig, 0.001, 10_000.0, 1.0 / leverage)
    res = qlm.backtest(qlm.Signals(**sig), df, fill="next_open", integer=True, fees=0.001,
                       init_cash=10_000.0, leverage=leverage)
    assert not res.stats["liquidated"]
    assert_same(stats, res)


def test_ruin_matches_backtesting_up_to_its_stated_difference():
    """A short ruined by a bar that gaps through its liquidation level and closes there (open = close):
    backtesting.py closes at that close when equity <= 0, QLM liquidates at the open — the same price,
    so the same trade and the same equity before it. The difference, stated in docs/concepts.md:
    backtesting.py then sets equity to 0 (it absorbs the debt), QLM keeps the debt the gap left."""
    close = np.array([100, 100, 104, 110, 118, 126, 135, 250, 240, 230, 220.0])
    n = len(close)
    idx = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC", name="time")
    ours = pd.DataFrame({"open": close, "high": close * 1.002, "low": close * 0.998, "close": close,
                         "volume": 1.0}, index=idx)
    ours.iloc[7, :4] = 250.0  # the ruinous bar: open = high = low = close
    raw = ours.rename(columns=str.capitalize).tz_localize(None)
    sig = {k: np.zeros(n, bool) for k in ("entry_long", "exit_long", "entry_short", "exit_short")}
    sig["entry_short"][1] = True
    stats = run_backtesting(raw, sig, 0.0, 10_000.0, 1.0)
    res = qlm.backtest(qlm.Signals(**sig), ours, fill="next_open", integer=True, init_cash=10_000.0)
    theirs = stats._trades
    row = res.trades.iloc[0]
    assert len(res.trades) == len(theirs) == 1
    assert row["exit_reason"] == "liquidation" and row["exit_bar"] == theirs["ExitBar"].iloc[0] == 7
    assert row["exit_price"] == theirs["ExitPrice"].iloc[0] == 250.0
    assert row["pnl"] == pytest.approx(theirs["PnL"].iloc[0], rel=1e-12)
    their_equity = stats._equity_curve["Equity"].to_numpy()
    np.testing.assert_allclose(res.equity.to_numpy()[:7], their_equity[:7], rtol=1e-12)
    assert their_equity[7:].max() == 0.0  # backtesting.py: the debt is written off
    debt = 10_000 + row["pnl"]
    assert debt < 0 and np.allclose(res.equity.to_numpy()[7:], debt)  # QLM: the debt stays


def test_real_ruin_on_goog_same_bar_different_fill():
    """A 2x short on GOOG's October 2004 gap: both engines end the account on the same bar; backtesting.py
    closes at that bar's close (172.43), QLM at the open that gapped through the level (170.54)."""
    df = qlm.sample_data("goog")
    sig = disjoint_signals(len(df), seed=11, short=True)
    stats = run_backtesting(RAW["goog"], sig, 0.001, 10_000.0, 0.5)
    res = qlm.backtest(qlm.Signals(**sig), df, fill="next_open", integer=True, fees=0.001,
                       init_cash=10_000.0, leverage=2.0)
    theirs = stats._trades
    ours = res.trades
    assert res.stats["liquidated"] and len(ours) == len(theirs)
    last = ours.iloc[-1]
    bar = int(last["exit_bar"])
    assert last["exit_reason"] == "liquidation" and bar == theirs["ExitBar"].iloc[-1]
    assert last["exit_price"] == df["open"].iloc[bar]
    assert theirs["ExitPrice"].iloc[-1] == df["close"].iloc[bar]
    np.testing.assert_allclose(res.equity.to_numpy()[:bar],
                               stats._equity_curve["Equity"].to_numpy()[:bar], rtol=1e-9)
    assert stats._equity_curve["Equity"].iloc[bar:].max() == 0.0
    assert (res.equity.iloc[bar:] == res.stats["final_value"]).all()
