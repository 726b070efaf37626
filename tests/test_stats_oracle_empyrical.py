"""The return statistics against an independent library: empyrical-reloaded (and quantstats).

One returns series: ``res.returns`` (every bar, the first against the initial cash; NaN after ruin or a
liquidation) is exactly what the ratios use, so empyrical given ``res.returns`` and the result's own
``bars_per_year`` reproduces ``res.stats``. Two conventions differ on purpose (docs/concepts.md,
"Statistics"), and each is asserted here as the documented difference:

- CAGR compounds over the data's calendar span (first to last timestamp, n - 1 bar intervals);
  empyrical's ``cagr`` counts n returns as n periods. Given ``annualization = n / span_years`` (its
  span made ours) empyrical agrees.
- ``max_drawdown`` is floored at -100%: a gap that leaves a debt (equity below zero) makes empyrical's
  drawdown deeper than -100%; QLM states the debt in ``total_return`` and the NEGATIVE_EQUITY warning.
"""

from __future__ import annotations

import warnings

import empyrical as ep
import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel.engine.stats import span_years
from tests import bars
from tests.bars import flags

REL = 1e-12  # measured: at most ~1e-14 (sums of squares vs two-pass moments)


def close_to(mine: float, theirs: float, rel: float = REL) -> bool:
    """Equal to a relative ``rel``, NaN equal to NaN, infinities equal to themselves."""
    if np.isnan(mine) or np.isnan(theirs):
        return bool(np.isnan(mine) and np.isnan(theirs))
    if np.isinf(mine) or np.isinf(theirs):
        return mine == theirs
    return abs(mine - theirs) <= rel * max(abs(theirs), 1e-300) or mine == theirs


def empyrical_stats(res) -> dict[str, float]:
    """Every return-based statistic from empyrical, given ``res.returns`` and ``bars_per_year``."""
    r = res.returns
    bpy = float(res.stats["bars_per_year"])
    # empyrical's CAGR spans len(returns) / annualization years: pass the calendar span's factor
    years = span_years(res.data.index)
    cagr_factor = len(r) / years
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        out = {
            "total_return": float(ep.cum_returns_final(r.fillna(0.0))),
            "volatility": float(ep.annual_volatility(r, annualization=bpy)),
            "sharpe": float(ep.sharpe_ratio(r, annualization=bpy)),
            "sortino": float(ep.sortino_ratio(r, annualization=bpy)),
            "max_drawdown": float(ep.max_drawdown(r)),
            "cagr": float(ep.cagr(r.fillna(0.0), annualization=cagr_factor)),
            "calmar": float(ep.calmar_ratio(r.fillna(0.0), annualization=cagr_factor)),
        }
    return out


def check_against_empyrical(res, skip: tuple[str, ...] = ()) -> dict[str, float]:
    """Assert each stat equals empyrical's; returns the relative differences (for the record)."""
    theirs = empyrical_stats(res)
    diffs = {}
    for key, value in theirs.items():
        if key in skip:
            continue
        mine = float(res.stats[key])
        assert close_to(mine, value), (key, mine, value)
        diffs[key] = 0.0 if not np.isfinite(value) or mine == value else abs(mine / value - 1)
    return diffs


def one_series(res) -> None:
    """``res.returns`` is the series the ratios use: its defined values' count, mean and std."""
    r = res.returns.to_numpy()
    defined = r[~np.isnan(r)]
    bpy = res.stats["bars_per_year"]
    assert len(defined) == int(res._acc[qlm.engine.layout.ST_N_R])
    if len(defined) > 1 and defined.std(ddof=1) > 0:
        assert close_to(res.stats["sharpe"], defined.mean() / defined.std(ddof=1) * np.sqrt(bpy))
    assert res.drawdown.min() >= -1.0 and res.stats["max_drawdown"] >= -1.0
    assert close_to(res.stats["max_drawdown"], float(res.drawdown.min()))


@pytest.fixture(scope="module")
def synthetic():
    return qlm.sample_data("synthetic", n=6_000, seed=11)


@pytest.fixture(scope="module")
def btc():
    return qlm.sample_data("btcusd")


@pytest.fixture(scope="module")
def goog():
    return qlm.sample_data("goog")


def test_hourly_synthetic_with_a_trade_entered_on_bar_zero(synthetic) -> None:
    n = len(synthetic)
    rng = np.random.default_rng(3)
    entries = rng.random(n) < 0.02
    entries[0] = True  # the fee paid on bar 0 is bar 0's return
    exits = rng.random(n) < 0.02
    res = qlm.backtest(qlm.Signals(entry_long=entries, exit_long=exits, entry_short=exits,
                                   exit_short=entries),
                       synthetic, fees=0.001, slippage=0.0005, record=False)
    assert res.trades["entry_bar"].iloc[0] == 0
    assert res.returns.iloc[0] < 0  # the entry's fee and slippage against the initial cash
    assert res.returns.notna().all() and len(res.returns) == n
    check_against_empyrical(res)
    one_series(res)


def test_monthly_btcusd_long_only(btc) -> None:
    res = qlm.backtest("sma_cross", btc, fast=3, slow=12, fees=0.001, record=False)
    assert res.stats["n_closed"] >= 3 and not res.stats["liquidated"]
    check_against_empyrical(res)
    one_series(res)


def test_daily_goog_long_short_next_open(goog) -> None:
    res = qlm.backtest("sma_cross", goog, direction="both", fill="next_open", fees=0.002, record=False)
    assert res.stats["n_closed"] > 10
    assert 240 < res.stats["bars_per_year"] < 260  # a stock's trading days, from the timestamps
    check_against_empyrical(res)
    one_series(res)


def test_quantstats_agrees_on_sharpe_sortino_volatility(goog) -> None:
    qs = pytest.importorskip("quantstats")
    res = qlm.backtest("sma_cross", goog, fees=0.001, record=False)
    r = res.returns
    bpy = float(res.stats["bars_per_year"])
    assert close_to(res.stats["sharpe"], float(qs.stats.sharpe(r, periods=bpy)))
    assert close_to(res.stats["sortino"], float(qs.stats.sortino(r, periods=bpy)))
    assert close_to(res.stats["volatility"], float(qs.stats.volatility(r, periods=bpy)))


def test_cagr_spans_the_calendar_not_one_period_per_return(goog) -> None:
    """The documented difference: empyrical given bars_per_year spans n / bpy years, one bar more."""
    res = qlm.backtest("sma_cross", goog, record=False)
    r, bpy = res.returns, float(res.stats["bars_per_year"])
    growth = res.stats["final_value"] / res.stats["init_cash"]
    n = len(r)
    assert close_to(float(ep.cagr(r, annualization=bpy)), growth ** (bpy / n) - 1)
    assert close_to(res.stats["cagr"], growth ** (bpy / (n - 1)) - 1)  # (n - 1) / bpy = the span
    assert close_to(res.stats["cagr"], growth ** (1 / span_years(res.data.index)) - 1)
    assert not close_to(res.stats["cagr"], float(ep.cagr(r, annualization=bpy)), rel=1e-6)


def test_ruin_returns_end_at_the_liquidation(btc) -> None:
    """The btcusd donchian ruin: returns NaN after the liquidation, ratios over the returns up to it."""
    res = qlm.backtest("donchian_breakout", btc, fill="next_open", record=False)
    assert res.stats["liquidated"]
    bar = int(res.trades["exit_bar"].iloc[-1])
    r = res.returns.to_numpy()
    assert np.isfinite(r[: bar + 1]).all() and np.isnan(r[bar + 1 :]).all()
    assert res.stats["max_drawdown"] == -1.0 and res.stats["cagr"] == -1.0
    check_against_empyrical(res)
    one_series(res)


def test_ruin_with_equity_left_is_a_closed_account() -> None:
    """A liquidation that leaves equity: the flat bars after it are not returns (NaN)."""
    rng = np.random.default_rng(4)
    close = 100 * np.exp(np.cumsum(rng.normal(0.004, 0.01, 300)))
    df = bars.frame(close, high=close * 1.002, low=close * 0.998, freq="1D")
    res = qlm.backtest(qlm.Signals(entry_short=flags(300, 1)), df, leverage=2, maintenance_margin=0.2,
                       record=False)
    bar = int(res.trades["exit_bar"].iloc[0])
    assert res.stats["liquidated"] and res.stats["final_value"] > 0 and bar < 299
    assert res.returns.iloc[: bar + 1].notna().all() and res.returns.iloc[bar + 1 :].isna().all()
    check_against_empyrical(res)
    one_series(res)


def test_a_debt_is_a_100_percent_drawdown() -> None:
    """The documented difference: a gap through the level leaves equity below zero; empyrical's
    drawdown goes past -100%, QLM's stops at -100% and total_return states the debt."""
    close = np.array([100, 100, 130, 150, 240, 250, 260.0])
    df = bars.frame(close, open_=[100, 100, 130, 150, 230, 250, 260], freq="1D")
    res = qlm.backtest(qlm.Signals(entry_short=flags(7, 1)), df, record=False)
    assert res.stats["final_value"] < 0 and res.stats["total_return"] < -1
    assert res.stats["max_drawdown"] == -1.0 and res.drawdown.min() == -1.0
    assert float(ep.max_drawdown(res.returns)) < -1.0
    r = res.returns.to_numpy()
    assert r[4] < -1.0 and np.isnan(r[5:]).all()  # the ruin bar's loss, then no returns
    # a growth below zero has no real root (empyrical: NaN over a fractional number of years); QLM: -100%
    assert np.isnan(empyrical_stats(res)["cagr"]) and res.stats["cagr"] == -1.0
    check_against_empyrical(res, skip=("max_drawdown", "calmar", "cagr"))
    assert res.stats["calmar"] == -1.0
    one_series(res)


def test_one_and_two_bars() -> None:
    one = qlm.backtest(qlm.Signals(entry_long=flags(1, 0)), bars.frame([100.0]), fees=0.001, record=False)
    assert len(one.returns) == 1 and one.returns.iloc[0] < 0
    for key in ("volatility", "sharpe", "sortino", "cagr", "bars_per_year"):
        assert np.isnan(one.stats[key]), key
    # two bars: two returns (bar 0's fee, bar 1's move): defined, and empyrical's
    two = qlm.backtest(qlm.Signals(entry_long=flags(2, 0)), bars.frame([100.0, 101.0]), fees=0.001,
                       record=False)
    assert two.returns.notna().all() and len(two.returns) == 2
    assert np.isfinite(two.stats["volatility"]) and np.isfinite(two.stats["sharpe"])
    check_against_empyrical(two)
    # two bars without a trade: both returns 0, volatility 0, Sharpe and Sortino NaN (0 / 0)
    flat = qlm.backtest(qlm.Signals(entry_long=flags(2)), bars.frame([100.0, 101.0]), record=False)
    assert flat.stats["volatility"] == 0.0
    assert np.isnan(flat.stats["sharpe"]) and np.isnan(flat.stats["sortino"])
    check_against_empyrical(flat)


def test_no_trades(synthetic) -> None:
    res = qlm.backtest(qlm.Signals(entry_long=flags(len(synthetic))), synthetic, record=False)
    s = res.stats
    assert s["n_trades"] == 0 and s["total_return"] == 0.0 and s["max_drawdown"] == 0.0
    assert s["volatility"] == 0.0 and s["cagr"] == 0.0
    for key in ("sharpe", "sortino", "calmar", "win_rate", "profit_factor", "avg_trade_return",
                "expectancy", "best_trade", "worst_trade"):
        assert np.isnan(s[key]), key
    assert (res.returns == 0.0).all()
    check_against_empyrical(res)


def test_no_losing_bar_sortino_is_infinite_as_empyricals() -> None:
    close = 100 * 1.001 ** np.arange(200)
    res = qlm.backtest(qlm.Signals(entry_long=flags(200, 0)), bars.frame(close, freq="1D"), record=False)
    assert (res.returns >= 0).all() and res.stats["sortino"] == np.inf
    assert np.isnan(res.stats["calmar"])  # no drawdown
    assert res.stats["n_closed"] == 0 and np.isnan(res.stats["profit_factor"])  # one open trade
    check_against_empyrical(res)


def test_portfolio_stats_are_the_same_definitions(synthetic) -> None:
    """`group_kernels.equity_stats` (portfolios) against empyrical, and against the single-asset
    kernel on a one-symbol portfolio."""
    universe = {f"S{k}": qlm.sample_data("synthetic", n=3_000, seed=20 + k) for k in range(3)}
    res = qlm.backtest_portfolio("sma_cross", universe, fees=0.001, record=False)
    assert res.stats["n_closed"] > 5
    check_against_empyrical(res)
    one_series(res)
    one = {"A": synthetic}
    entries = flags(len(synthetic), 0, 500, 2_000)
    exits = flags(len(synthetic), 300, 1_000, 4_000)
    sig = qlm.Signals(entry_long=entries, exit_long=exits)
    group = qlm.backtest_portfolio({"A": sig}, one, fees=0.001, record=False)
    single = qlm.backtest(sig, synthetic, fees=0.001, record=False)
    for key in ("sharpe", "sortino", "volatility", "cagr", "calmar", "max_drawdown", "total_return"):
        assert close_to(group.stats[key], single.stats[key], rel=1e-12), key
    pd.testing.assert_series_equal(group.returns, single.returns)
    check_against_empyrical(group)
