"""Hand-built cases for every stated engine rule: fills, conflicts, reversals, stops, sizing, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel.errors import ConfigError, DataError, StrategyError
from tests.bars import flags, frame


def test_fill_at_close_all_cash():
    df = frame([100, 100, 110, 120, 90])
    res = qlm.backtest(qlm.Signals(entry_long=flags(5, 1), exit_long=flags(5, 3)), df)
    t = res.trades.iloc[0]
    assert (t.entry_bar, t.exit_bar, t.entry_price, t.exit_price) == (1, 3, 100.0, 120.0)
    assert t["size"] == pytest.approx(100.0)
    np.testing.assert_allclose(res.equity, [10_000, 10_000, 11_000, 12_000, 12_000])
    assert res.stats["final_value"] == pytest.approx(12_000)
    assert res.stats["n_trades"] == 1 and res.stats["win_rate"] == 1.0


def test_fill_at_next_open():
    df = frame([100, 100, 110, 120, 90, 95], open_=[100, 100, 105, 118, 92, 94])
    res = qlm.backtest(qlm.Signals(entry_long=flags(6, 1), exit_long=flags(6, 3)), df, fill="next_open")
    t = res.trades.iloc[0]
    assert (t.entry_bar, t.exit_bar, t.entry_price, t.exit_price) == (2, 4, 105.0, 92.0)
    assert res.stats["final_value"] == pytest.approx(10_000 / 105 * 92)


def test_signal_on_last_bar_never_fills_next_open():
    df = frame([100, 101, 102])
    res = qlm.backtest(qlm.Signals(entry_long=flags(3, 2)), df, fill="next_open")
    assert res.stats["n_trades"] == 0 and res.stats["final_value"] == 10_000


def test_conflicting_signals_cancel():
    df = frame([100, 101, 102, 103])
    both = flags(4, 1)
    res = qlm.backtest(qlm.Signals(entry_long=both, exit_long=both), df)
    assert res.stats["n_trades"] == 0
    res = qlm.backtest(qlm.Signals(entry_long=both, entry_short=both), df)
    assert res.stats["n_trades"] == 0


def test_opposite_entry_reverses_with_two_orders():
    df = frame([100, 100, 110, 100, 90])
    res = qlm.backtest(qlm.Signals(entry_long=flags(5, 1), entry_short=flags(5, 2)), df, fixed_fees=1.0)
    t = res.trades
    assert list(t["direction"]) == ["long", "short"]
    assert t.loc[0, "exit_reason"] == "reversal" and t.loc[0, "exit_bar"] == 2
    assert t.loc[1, "entry_bar"] == 2 and t.loc[1, "status"] == "open"
    orders = res.orders
    assert list(orders["side"]) == ["buy", "sell", "sell"] and list(orders["kind"]) == [
        "entry",
        "exit",
        "entry",
    ]
    assert orders["fees"].sum() == pytest.approx(3.0)


def test_no_pyramiding_and_direction_filter():
    df = frame([100, 101, 102, 103, 104])
    res = qlm.backtest(qlm.Signals(entry_long=flags(5, 1, 2, 3)), df)
    assert res.stats["n_trades"] == 1
    sig = qlm.Signals(entry_long=flags(5, 1), entry_short=flags(5, 3))
    long_only = qlm.backtest(sig, df, direction="long")
    assert list(long_only.trades["direction"]) == ["long"]
    short_only = qlm.backtest(sig, df, direction="short")
    assert list(short_only.trades["direction"]) == ["short"] and short_only.trades.loc[0, "entry_bar"] == 3


def test_stop_loss_wins_when_both_levels_touched_in_one_bar():
    # entry at close 100 on bar 1; bar 2 spans 97..104: SL 2% (98) and TP 3% (103) both touched
    df = frame([100, 100, 100, 100], high=[100, 100, 104, 100], low=[100, 100, 97, 100])
    res = qlm.backtest(qlm.Signals(entry_long=flags(4, 1)), df, sl_stop=0.02, tp_stop=0.03)
    t = res.trades.iloc[0]
    assert t.exit_reason == "stop_loss" and t.exit_bar == 2 and t.exit_price == pytest.approx(98.0)


def test_take_profit_and_gap_through_open():
    df = frame(
        [100, 100, 100, 100], open_=[100, 100, 106, 100], high=[100, 100, 107, 100], low=[100, 100, 99, 100]
    )
    res = qlm.backtest(qlm.Signals(entry_long=flags(4, 1)), df, tp_stop=0.03)
    t = res.trades.iloc[0]  # opened above the 103 target: filled at the open, 106
    assert t.exit_reason == "take_profit" and t.exit_price == pytest.approx(106.0)
    df = frame([100, 100, 90, 90], open_=[100, 100, 92, 90], low=[100, 100, 89, 90])
    res = qlm.backtest(qlm.Signals(entry_long=flags(4, 1)), df, sl_stop=0.05, slippage=0.001)
    t = res.trades.iloc[0]  # gapped below the 95 stop: filled at the open 92, minus slippage
    assert t.exit_reason == "stop_loss" and t.exit_price == pytest.approx(92 * 0.999)


def test_short_stops_mirror():
    df = frame([100, 100, 100, 100], high=[100, 100, 103, 100], low=[100, 100, 99, 100])
    res = qlm.backtest(qlm.Signals(entry_short=flags(4, 1)), df, sl_stop=0.02)
    t = res.trades.iloc[0]
    assert t.direction == "short" and t.exit_reason == "stop_loss" and t.exit_price == pytest.approx(102.0)


def test_trailing_stop_uses_highs_before_the_current_bar():
    # entry 100 at bar 1; bar 2 high 120 raises the reference to 120 only after bar 2's check
    close = [100, 100, 118, 115, 110]
    high = [100, 100, 120, 116, 112]
    low = [100, 100, 99, 113, 107]
    res = qlm.backtest(qlm.Signals(entry_long=flags(5, 1)), frame(close, high=high, low=low), tsl_stop=0.05)
    t = res.trades.iloc[0]
    # bar 2: trail 100 -> level 95 not hit (low 99); bar 3: trail 120 -> level 114 hit (low 113)
    assert t.exit_reason == "trailing_stop" and t.exit_bar == 3 and t.exit_price == pytest.approx(114.0)


def test_close_mode_skips_stops_on_entry_bar_next_open_checks_them():
    df = frame([100, 100, 100, 100], open_=[100, 100, 100, 100], low=[100, 90, 90, 100])
    close_mode = qlm.backtest(qlm.Signals(entry_long=flags(4, 1)), df, sl_stop=0.05)
    assert close_mode.trades.loc[0, "exit_bar"] == 2  # bar 1's low came before the close fill
    open_mode = qlm.backtest(qlm.Signals(entry_long=flags(4, 0)), df, sl_stop=0.05, fill="next_open")
    assert open_mode.trades.loc[0, "entry_bar"] == 1 and open_mode.trades.loc[0, "exit_bar"] == 1


def test_stop_on_signal_bar_suppresses_that_bars_signal_in_close_mode():
    df = frame([100, 100, 100, 100], low=[100, 100, 90, 100])
    sig = qlm.Signals(entry_long=flags(4, 1, 2))
    res = qlm.backtest(sig, df, sl_stop=0.05)
    assert res.stats["n_trades"] == 1  # the bar-2 entry is ignored after its stop exit


def test_per_bar_stop_array_sampled_at_the_signal_bar():
    df = frame([100, 100, 100, 100, 100], open_=[100, 100, 100, 100, 100], low=[100, 100, 100, 96, 100])
    sl = np.array([0.5, 0.03, 0.5, 0.5, 0.5])
    res = qlm.backtest(qlm.Signals(entry_long=flags(5, 1), sl_stop=sl), df, fill="next_open")
    t = res.trades.iloc[0]  # signal bar 1 -> 3% stop, although the fill is on bar 2
    assert t.entry_bar == 2 and t.exit_reason == "stop_loss" and t.exit_price == pytest.approx(97.0)


def test_close_at_end_and_open_trade_reporting():
    df = frame([100, 100, 110])
    sig = qlm.Signals(entry_long=flags(3, 1))
    open_end = qlm.backtest(sig, df, fees=0.01)
    t = open_end.trades.iloc[0]
    assert t.status == "open" and pd.isna(t.exit_time) and t.exit_price == 110
    assert t.fees == pytest.approx(open_end.orders.loc[0, "fees"])  # entry fees only
    assert open_end.stats["n_closed"] == 0 and np.isnan(open_end.stats["win_rate"])
    closed = qlm.backtest(sig, df, fees=0.01, close_at_end=True)
    t = closed.trades.iloc[0]
    assert t.status == "closed" and t.exit_reason == "end"
    assert closed.orders.loc[1, "fees"] > 0 and closed.orders.loc[1, "reason"] == "end"
    assert closed.stats["final_value"] < open_end.stats["final_value"]


@pytest.mark.parametrize(
    "kw,units",
    [
        ({"size": 1000.0, "size_type": "units"}, 100.0),  # capped by cash: partial fill
        ({"size": 30.0, "size_type": "units"}, 30.0),
        ({"size": 2_500.0, "size_type": "value"}, 25.0),
        ({"size": 0.5, "size_type": "percent"}, 50.0),
        ({"integer": True, "fees": 0.01}, 99.0),
    ],
)
def test_sizing(kw, units):
    df = frame([100, 100, 100])
    res = qlm.backtest(qlm.Signals(entry_long=flags(3, 1)), df, **kw)
    assert res.trades.loc[0, "size"] == pytest.approx(units)


def test_order_refused_when_one_unit_is_unaffordable():
    df = frame([100, 20_000, 20_000])
    res = qlm.backtest(qlm.Signals(entry_long=flags(3, 1)), df, integer=True)
    assert res.stats["n_trades"] == 0 and res.stats["rejected_orders"] == 1


def test_costs_reduce_fill_prices_against_the_trader():
    df = frame([100, 100, 100, 100])
    res = qlm.backtest(
        qlm.Signals(entry_long=flags(4, 1), exit_long=flags(4, 2)),
        df,
        fees=0.001,
        fixed_fees=1.0,
        slippage=0.002,
    )
    t = res.trades.iloc[0]
    assert t.entry_price == pytest.approx(100.2) and t.exit_price == pytest.approx(99.8)
    entry, exit_ = res.orders.iloc[0], res.orders.iloc[1]
    assert entry.fees == pytest.approx(t["size"] * 100.2 * 0.001 + 1.0)
    assert exit_.fees == pytest.approx(t["size"] * 99.8 * 0.001 + 1.0) and t.fees == pytest.approx(
        entry.fees + exit_.fees
    )
    assert res.stats["final_value"] == pytest.approx(10_000 + t.pnl)
    assert res.stats["fees_paid"] == pytest.approx(t.fees)


@pytest.mark.parametrize(
    "kw",
    [
        {"fill": "bogus"},
        {"fees": -0.1},
        {"slippage": 1.5},
        {"init_cash": 0},
        {"size": 2.0, "size_type": "percent"},
        {"sl_stop": 1.5},
        {"direction": "up"},
        {"integer": "yes"},
        {"fees": float("nan")},
    ],
)
def test_bad_settings_raise_config_error(kw):
    with pytest.raises(ConfigError) as info:
        qlm.backtest(qlm.Signals(), frame([1, 2, 3]), **kw)
    err = info.value
    assert err.hint and err.context.get("setting") in kw
    json.loads(err.to_json())


def test_bad_data_raises_data_error_with_row():
    df = frame([100, 101, 102, 103])
    df.loc[df.index[2], "close"] = np.nan
    with pytest.raises(DataError) as info:
        qlm.backtest(qlm.Signals(entry_long=flags(4, 1)), df)
    assert info.value.context["row"] == 3 and info.value.context["column"] == "close"
    with pytest.raises(DataError, match="missing column"):
        qlm.backtest(qlm.Signals(), frame([1, 2]).drop(columns="low"))
    with pytest.raises(DataError, match="float64"):
        qlm.backtest(qlm.Signals(), frame([1, 2]).astype({"close": "float32"}))
    with pytest.raises(DataError, match="DatetimeIndex"):
        qlm.backtest(qlm.Signals(), frame([1, 2]).reset_index())


def test_strategy_errors_propagate(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text(
        "from qlm_kernel import Strategy, Signals\n\n"
        "class Broken(Strategy):\n"
        "    def signals(self, data):\n"
        "        return Signals(entry_long=data['Close'] > 0)\n"
    )
    with pytest.raises(StrategyError) as info:
        qlm.backtest(str(path), frame([1, 2, 3]))
    assert info.value.context["line"] == 5 and info.value.context["file"].endswith("broken.py")


def test_stats_match_an_independent_computation():
    df = qlm.sample_data("synthetic", n=3000, seed=3)
    res = qlm.backtest("sma_cross", df, fast=8, slow=40, fees=0.0005)
    eq = res.equity.to_numpy()
    r = eq / np.concatenate(([10_000.0], eq[:-1])) - 1  # every bar, the first against the initial cash
    np.testing.assert_allclose(res.returns.to_numpy(), r, rtol=0, atol=0)
    bpy = (len(df) - 1) / ((df.index[-1] - df.index[0]).total_seconds() / (365.25 * 86400))
    s = res.stats
    assert s["bars_per_year"] == pytest.approx(bpy)
    assert s["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(bpy), rel=1e-9)
    assert s["sortino"] == pytest.approx(
        r.mean() / np.sqrt(np.mean(np.minimum(r, 0) ** 2)) * np.sqrt(bpy), rel=1e-9
    )
    assert s["max_drawdown"] == pytest.approx(res.drawdown.min(), rel=1e-12)
    assert s["exposure"] == pytest.approx((res.position != 0).mean())
    below = eq < np.maximum.accumulate(np.maximum(eq, 10_000.0))
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate(([0], below.astype(int), [0])))))[::2]
    assert s["max_drawdown_bars"] == (runs.max() if len(runs) else 0)
    closed = res.trades[res.trades.status == "closed"]
    assert s["win_rate"] == pytest.approx((closed.pnl > 0).mean())
    assert s["profit_factor"] == pytest.approx(
        closed.pnl[closed.pnl > 0].sum() / -closed.pnl[closed.pnl <= 0].sum()
    )
    goog = qlm.backtest(qlm.Signals(), qlm.sample_data("goog"))
    assert 240 < goog.stats["bars_per_year"] < 260  # trading days, from the data itself


def test_no_lookahead_truncation_leaves_the_past_unchanged():
    df = qlm.sample_data("synthetic", n=2000, seed=9)
    for fill in ("close", "next_open"):
        full = qlm.backtest("donchian_breakout", df, fill=fill)
        cut = qlm.backtest("donchian_breakout", df.iloc[:1200], fill=fill)
        np.testing.assert_array_equal(full.equity.to_numpy()[:1199], cut.equity.to_numpy()[:1199])
        early = full.trades[(full.trades.exit_bar >= 0) & (full.trades.exit_bar < 1199)]
        pd.testing.assert_frame_equal(
            early.reset_index(drop=True), cut.trades.iloc[: len(early)].reset_index(drop=True)
        )


def test_result_presentation():
    df = qlm.sample_data("synthetic", n=2000, seed=2)
    res = qlm.backtest("rsi_reversion", df, fees=0.001)
    doc = json.loads(json.dumps(res.to_dict(include_equity=True)))
    assert doc["stats"]["n_trades"] == res.stats["n_trades"] and len(doc["equity"]["value"]) == 2000
    assert len(doc["trades"]) == len(res.trades)
    fig = res.plot()
    assert {trace.name for trace in fig.data} >= {"close", "equity", "drawdown"}
    html = res.report_html()
    assert "plotly" in html.lower() and "<th>Sharpe</th>" in html and "<th>Buy &amp; hold return</th>" in html
    assert "<table>" in res._repr_html_() and "BacktestResult" in repr(res)
