"""The engine against vectorbt's ``Portfolio.from_signals`` (fill at close) on the same inputs.

Same trades (times, sizes, prices, fees, pnl) and final value equal within 1e-9 relative, for
long-only and long/short, with fees, fixed fees, slippage, stop-loss, take-profit and trailing stop.
Stop exits are compared with vectorbt's ``stop_exit_price='stopmarket'`` (our stops pay slippage).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel import indicators as ta
from tests.vectorbt_lazy import vbt

REL = 1e-9


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return qlm.sample_data("synthetic", n=4000, seed=7)


def random_signals(n: int, seed: int, p: float = 0.03) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.random(n) < p for name in ("entry_long", "exit_long", "entry_short", "exit_short")}


def run_vbt(df: pd.DataFrame, sig: dict[str, np.ndarray], short: bool, **kw):
    vkw = dict(kw)
    if "tsl_stop" in vkw:
        vkw["sl_stop"] = vkw.pop("tsl_stop")
        vkw["sl_trail"] = True
    if any(k in vkw for k in ("sl_stop", "tp_stop")):
        vkw.update(open=df["open"], high=df["high"], low=df["low"], stop_exit_price="stopmarket")
    if "size" in vkw and vkw.get("size_type") == "units":
        vkw["size_type"] = "amount"
    extra = {"short_entries": sig["entry_short"], "short_exits": sig["exit_short"]} if short else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return vbt.Portfolio.from_signals(
            df["close"], sig["entry_long"], sig["exit_long"], init_cash=10_000.0, freq="1h", **extra, **vkw
        )


def run_qlm(df: pd.DataFrame, sig: dict[str, np.ndarray], short: bool, **kw):
    signals = (
        qlm.Signals(**sig) if short else qlm.Signals(entry_long=sig["entry_long"], exit_long=sig["exit_long"])
    )
    return qlm.backtest(signals, df, init_cash=10_000.0, direction="both" if short else "long", **kw)


def assert_same(pf, res) -> None:
    assert res.stats["final_value"] == pytest.approx(pf.final_value(), rel=REL)
    theirs = pf.trades.records_readable
    ours = res.trades
    assert len(ours) == len(theirs)
    assert (ours["entry_time"].to_numpy() == theirs["Entry Timestamp"].to_numpy()).all()
    closed = theirs["Status"] == "Closed"
    assert (ours["status"].eq("closed").to_numpy() == closed.to_numpy()).all()
    np.testing.assert_array_equal(
        ours.loc[closed.to_numpy(), "exit_time"].to_numpy(), theirs.loc[closed, "Exit Timestamp"].to_numpy()
    )
    np.testing.assert_allclose(ours["size"], theirs["Size"], rtol=REL)
    np.testing.assert_allclose(ours["entry_price"], theirs["Avg Entry Price"], rtol=REL)
    entries = res.orders[res.orders["kind"] == "entry"].sort_values("trade")
    np.testing.assert_allclose(entries["fees"], theirs["Entry Fees"], rtol=REL, atol=1e-9)
    np.testing.assert_allclose(
        ours.loc[closed.to_numpy(), "exit_price"], theirs.loc[closed, "Avg Exit Price"], rtol=REL
    )
    np.testing.assert_allclose(ours["pnl"], theirs["PnL"], rtol=1e-7, atol=1e-6)
    directions = np.where(theirs["Direction"] == "Long", "long", "short")
    assert (ours["direction"].to_numpy() == directions).all()
    np.testing.assert_allclose(res.equity.to_numpy(), pf.value().to_numpy(), rtol=REL)


COSTS = [
    {},
    {"fees": 0.001},
    {"fees": 0.002, "slippage": 0.0005},
    {"fees": 0.0005, "fixed_fees": 2.0},
]


@pytest.mark.parametrize("costs", COSTS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "free")
@pytest.mark.parametrize("seed", [1, 2])
def test_long_only_random_signals(data, costs, seed):
    sig = random_signals(len(data), seed)
    assert_same(run_vbt(data, sig, False, **costs), run_qlm(data, sig, False, **costs))


@pytest.mark.parametrize("costs", COSTS[:3], ids=["free", "fees", "fees+slippage"])
@pytest.mark.parametrize("seed", [3, 4])
def test_long_short_random_signals(data, costs, seed):
    sig = random_signals(len(data), seed)
    assert_same(run_vbt(data, sig, True, **costs), run_qlm(data, sig, True, **costs))


@pytest.mark.parametrize(
    "stops",
    [
        {"sl_stop": 0.02},
        {"tp_stop": 0.03},
        {"sl_stop": 0.015, "tp_stop": 0.02},
        {"tsl_stop": 0.02},
        {"tsl_stop": 0.01, "tp_stop": 0.05},
    ],
    ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()),
)
@pytest.mark.parametrize("short", [False, True], ids=["long", "long_short"])
def test_stops_intrabar(data, stops, short):
    sig = random_signals(len(data), 11, p=0.02)
    costs = {"fees": 0.001, "slippage": 0.0005}
    pf = run_vbt(data, sig, short, **costs, **stops)
    res = run_qlm(data, sig, short, **costs, **stops)
    assert_same(pf, res)
    assert res.trades["exit_reason"].isin(["stop_loss", "take_profit", "trailing_stop"]).any()


@pytest.mark.parametrize("fast,slow", [(5, 20), (10, 50), (20, 100)])
def test_sma_cross_strategy_matches(data, fast, slow):
    close = data["close"]
    f, s = ta.sma(close, fast), ta.sma(close, slow)
    sig = {
        "entry_long": ta.crossed_above(f, s).to_numpy(),
        "exit_long": ta.crossed_below(f, s).to_numpy(),
    }
    pf = run_vbt(data, sig, False, fees=0.001)
    res = qlm.backtest("sma_cross", data, fast=fast, slow=slow, fees=0.001, direction="long")
    assert_same(pf, res)


@pytest.mark.parametrize(
    "sizing",
    [
        {"size": 3.0, "size_type": "units"},
        {"size": 2_500.0, "size_type": "value"},
        {"size": 0.5, "size_type": "percent"},
    ],
    ids=["units", "value", "percent"],
)
def test_sizing_modes_match(data, sizing):
    sig = random_signals(len(data), 21)
    vkw = dict(sizing)
    if vkw["size_type"] == "units":
        vkw["size_type"] = "amount"
    pf = run_vbt(data, sig, False, fees=0.001, **vkw)
    res = run_qlm(data, sig, False, fees=0.001, **sizing)
    assert_same(pf, res)


def test_reversal_with_fixed_fees_is_two_orders(data):
    """Documented difference: vectorbt reverses in one order (one fixed fee), we close then open."""
    sig = random_signals(len(data), 5)
    res = run_qlm(data, sig, True, fixed_fees=3.0)
    reversals = res.trades["exit_reason"].eq("reversal").sum()
    assert reversals > 0
    assert res.stats["n_orders"] == len(res.orders) == res.stats["n_trades"] + res.stats["n_closed"]
    assert res.trades["fees"].sum() == pytest.approx(3.0 * len(res.orders))
    pf = run_vbt(data, sig, True, fixed_fees=3.0)
    assert pf.orders.count() == len(res.orders) - reversals
