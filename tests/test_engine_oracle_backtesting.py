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


def run_backtesting(raw: pd.DataFrame, sig: dict[str, np.ndarray], commission: float, cash: float):
    """backtesting.py mirroring our signal rules: enter/reverse on entries, close on exits."""

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
        bt = Backtest(raw, Mirror, cash=cash, commission=commission, exclusive_orders=True)
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
