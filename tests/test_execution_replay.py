"""paper_replay: zero-cost replays equal the next-open backtest; latency and slippage move fills as stated."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel import Param, Signals, Strategy
from qlm_kernel.errors import ConfigError, StrategyError
from qlm_kernel.execution import paper_replay

SYN = qlm.sample_data("synthetic", n=3000, seed=1)

CASES = [
    ("sma_cross", "synthetic", {}),
    ("sma_cross", "synthetic", {"fees": 0.001, "fixed_fees": 1.0}),
    ("rsi_reversion", "synthetic", {"fees": 0.001}),
    ("donchian_breakout", "synthetic", {"fees": 0.001}),
    (
        "donchian_breakout",
        "synthetic",
        {"fees": 0.001, "tp_stop": 0.03, "tsl_stop": 0.02, "close_at_end": True},
    ),
    ("donchian_breakout", "synthetic", {"direction": "short", "fees": 0.0005}),
    ("donchian_breakout", "goog", {"size": 10, "integer": True, "fees": 0.002}),
    ("rsi_reversion", "eurusd", {"size": 0.5, "size_type": "percent", "fees": 0.0002}),
    ("sma_cross", "btcusd", {"fast": 3, "slow": 8, "size": 5000, "size_type": "value", "close_at_end": True}),
    ("sma_cross", "goog", {"size": 3, "size_type": "units", "fees": 0.001, "sl_stop": 0.05}),
]


def _data(name: str) -> pd.DataFrame:
    return SYN if name == "synthetic" else qlm.sample_data(name)


@pytest.mark.parametrize(("strategy", "dataset", "settings"), CASES)
def test_zero_cost_replay_equals_next_open_backtest(strategy, dataset, settings):
    df = _data(dataset)
    bt = qlm.backtest(strategy, df, fill="next_open", record=False, **settings)
    res = paper_replay(strategy, df, latency=0.0, slippage=0.0, **settings)
    assert len(bt.trades) > 0
    pd.testing.assert_frame_equal(res.trades, bt.trades, check_exact=True)
    np.testing.assert_array_equal(res.equity.to_numpy(), bt.equity.to_numpy())
    div = res.divergence(bt)
    assert div.summary["n_matched"] == len(bt.trades) and div.summary["pnl_diff"] == 0.0
    assert div.summary["max_abs_entry_diff_bps"] == 0.0


def test_incremental_signals_equal_precomputed_ones():
    df = qlm.sample_data("synthetic", n=400, seed=5)
    for strategy in ("sma_cross", "rsi_reversion", "donchian_breakout"):
        full = paper_replay(strategy, df, latency=0.0, slippage=0.0, fees=0.001)
        inc = paper_replay(strategy, df, latency=0.0, slippage=0.0, fees=0.001, signals="incremental")
        pd.testing.assert_frame_equal(full.trades, inc.trades, check_exact=True)


class Peeks(Strategy):
    """Buys before the close rises: uses tomorrow's close (lookahead)."""

    k = Param(1, min=1, max=5)

    def signals(self, data):
        up = data["close"].shift(-self.k) > data["close"]
        return Signals(entry_long=up.fillna(False), exit_long=(~up).fillna(False))


def test_a_strategy_that_peeks_is_refused_for_precomputed_replay():
    with pytest.raises(StrategyError) as info:
        paper_replay(Peeks, SYN.iloc[:500])
    assert info.value.code == "LOOKAHEAD" and "incremental" in info.value.hint
    res = paper_replay(
        Peeks, SYN.iloc[:200], signals="incremental"
    )  # sees only the past: no edge from peeking
    assert (
        res.final_value
        < qlm.backtest(Peeks, SYN.iloc[:200], fill="next_open", record=False, slippage=0.0005).stats[
            "final_value"
        ]
    )


def test_latency_below_the_bar_spacing_fills_at_the_next_open_and_each_bar_of_latency_delays_a_bar():
    df = SYN.iloc[:1500]
    bt = qlm.backtest("sma_cross", df, fill="next_open", record=False)
    fast = paper_replay("sma_cross", df, latency=3599.0, slippage=0.0)  # just under one hourly bar
    pd.testing.assert_frame_equal(fast.trades, bt.trades)
    slow = paper_replay("sma_cross", df, latency=3600.0 * 1.5, slippage=0.0)  # 1.5 bars: one bar later
    t = slow.trades
    assert len(t) == len(bt.trades)
    np.testing.assert_array_equal(t["entry_bar"].to_numpy(), bt.trades["entry_bar"].to_numpy() + 1)
    np.testing.assert_array_equal(
        t["entry_price"].to_numpy(), df["open"].to_numpy()[t["entry_bar"].to_numpy()]
    )
    div = slow.divergence(bt)
    assert div.summary["n_matched"] == len(bt.trades)
    assert (div.table["entry_delay"] == pd.Timedelta(hours=1)).all()
    assert div.summary["mean_entry_delay_s"] == 3600.0


def test_slippage_moves_every_fill_against_the_trader_by_the_stated_bps():
    df = SYN.iloc[:1500]
    bt = qlm.backtest("donchian_breakout", df, fill="next_open", record=False, size=1)
    res = paper_replay("donchian_breakout", df, latency=0.0, slippage=0.001, size=1)
    div = res.divergence(bt)
    both = div.table[div.table["matched"] == "both"]
    assert len(both) > 5
    np.testing.assert_allclose(both["entry_diff_bps"].to_numpy(), 10.0, rtol=1e-6)
    same_exit = both[(both["exit_reason_paper"] == "signal") | (both["exit_reason_paper"] == "reversal")]
    assert len(same_exit) and np.allclose(same_exit["exit_diff_bps"].dropna().to_numpy(), 10.0, rtol=1e-6)
    assert div.summary["pnl_diff"] < 0
    # the default paper costs (100 ms, 5 bps) on hourly bars: next open, 5 bps worse
    default = paper_replay("donchian_breakout", df, size=1).divergence(bt)
    assert default.summary["mean_entry_diff_bps"] == pytest.approx(5.0, rel=1e-6)
    assert default.summary["mean_entry_delay_s"] == 0.0


def test_volume_participation_gives_partial_fills():
    df = SYN.iloc[:800]
    res = paper_replay("sma_cross", df, latency=0.0, slippage=0.0, max_participation=0.01, size=500)
    fills, orders = res.fills, res.orders
    filled = orders[orders["filled"] > 0]
    assert len(fills) > len(filled)  # some orders needed several bars
    per_bar = fills.groupby("bar")["size"].sum()
    vol = df["volume"].to_numpy()
    assert (per_bar.to_numpy() <= 0.01 * vol[per_bar.index.to_numpy()] * (1 + 1e-9)).all()


def test_replay_settings_are_checked():
    with pytest.raises(ConfigError):
        paper_replay("sma_cross", SYN, fill="close")
    with pytest.raises(ConfigError, match="cash account") as info:
        paper_replay("sma_cross", SYN, leverage=2)
    assert info.value.context["setting"] == "leverage"
    with pytest.raises(ConfigError):
        paper_replay("sma_cross", SYN, latency=-1)
    with pytest.raises(ConfigError):
        paper_replay(qlm.Signals(entry_long=np.zeros(len(SYN), bool)), SYN)
    with pytest.raises(ConfigError):
        paper_replay("sma_cross", SYN, signals="sometimes")


def test_replay_of_5000_bars_is_fast():
    df = qlm.sample_data("eurusd")
    paper_replay("donchian_breakout", df)  # warm-up
    started = time.perf_counter()
    res = paper_replay("donchian_breakout", df, fees=0.0002)
    elapsed = time.perf_counter() - started
    assert len(df) == 5000 and len(res.trades) > 50
    assert elapsed < 1.5, elapsed
