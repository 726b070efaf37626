"""Bootstrap bands (`qlm_kernel.engine.bootstrap`): seeded, the observed column is the engine's own
statistics, intervals behave (contain the observation, narrow with more data), trade-order shuffling
keeps the final value and moves only the drawdown, the fan chart has its traces, bad input is named."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

import qlm_kernel as qlm
from qlm_kernel.engine.bootstrap import BootstrapResult, bootstrap
from qlm_kernel.errors import ConfigError, DataError, QLMError

HEADLINE = ["sharpe", "max_drawdown", "cagr", "final_value"]


@pytest.fixture(scope="module")
def res():
    df = qlm.sample_data("synthetic", n=2000, seed=1)
    return qlm.backtest("sma_cross", df, fast=10, slow=50, record=False)


def test_same_seed_same_numbers(res):
    a = bootstrap(res, n=200, seed=7)
    b = bootstrap(res, n=200, seed=7)
    c = bootstrap(res, n=200, seed=8)
    pd.testing.assert_frame_equal(a.table, b.table)
    pd.testing.assert_frame_equal(a.paths, b.paths)
    assert not a.table["median"].equals(c.table["median"])
    t1 = bootstrap(res, n=100, seed=3, method="trades")
    t2 = bootstrap(res, n=100, seed=3, method="trades")
    pd.testing.assert_frame_equal(t1.samples, t2.samples)


def test_observed_is_the_engines_stats(res):
    boot = bootstrap(res, n=50, seed=0)
    for stat in HEADLINE:
        assert boot.table.loc[stat, "observed"] == pytest.approx(float(res.stats[stat]), rel=1e-9, abs=1e-12)


def test_interval_contains_the_observation(res):
    boot = bootstrap(res, n=400, seed=1)
    t = boot.table
    assert list(t.columns) == ["observed", "low", "median", "high"]
    assert list(t.index) == HEADLINE
    assert (t["low"] <= t["median"]).all() and (t["median"] <= t["high"]).all()
    for stat in HEADLINE:
        assert t.loc[stat, "low"] <= t.loc[stat, "observed"] <= t.loc[stat, "high"], stat
    assert boot.block_size is not None and boot.block_size >= 1
    assert boot.samples.shape == (400, 4)
    assert boot.paths.shape == (2000, 200)  # every bar (2,000 <= the plot cap), 200 paths kept


def test_interval_narrows_with_more_data():
    """The same strategy on 8x the bars of the same process: the Sharpe interval is much narrower."""
    widths = []
    for n_bars in (1500, 12000):
        df = qlm.sample_data("synthetic", n=n_bars, seed=5)
        r = qlm.backtest("sma_cross", df, fast=10, slow=50, record=False)
        t = bootstrap(r, n=300, seed=2, block_size=20).table
        widths.append(t.loc["sharpe", "high"] - t.loc["sharpe", "low"])
    assert widths[1] < 0.6 * widths[0]


def test_trade_order_keeps_the_final_value_and_moves_the_drawdown(res):
    """Compounding the same returns in another order gives the same product: final value, CAGR and
    Sharpe (an order-free mean and std) are identical in every shuffle; the drawdown is not."""
    boot = bootstrap(res, n=300, seed=4, method="trades")
    s = boot.samples
    final = float(res.stats["final_value"])
    np.testing.assert_allclose(s["final_value"], final, rtol=1e-10)
    np.testing.assert_allclose(s["cagr"], float(res.stats["cagr"]), rtol=1e-8)
    np.testing.assert_allclose(s["sharpe"], float(res.stats["sharpe"]), rtol=1e-8)
    assert s["max_drawdown"].nunique() > 50
    assert s["max_drawdown"].min() < float(res.stats["max_drawdown"]) - 0.01
    assert boot.n_segments == int((res.trades["status"] == "closed").sum())
    # every path ends at the real final value
    np.testing.assert_allclose(boot.paths.iloc[-1], final, rtol=1e-10)


def test_to_dict_is_json_and_plot_is_a_fan_chart(res):
    boot = bootstrap(res, n=100, seed=0)
    d = json.loads(json.dumps(boot.to_dict(include_bands=True)))
    assert d["method"] == "block" and d["n"] == 100 and d["confidence"] == 0.9
    assert set(d["table"]) == set(HEADLINE)
    assert set(d["table"]["sharpe"]) == {"observed", "low", "median", "high"}
    assert len(d["bands"]["p05"]) == len(d["bands"]["time"]) == 2000
    fig = boot.plot()
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    assert names == ["p95", "5-95%", "p75", "25-75%", "median", "equity"]
    assert fig.data[1].fill == "tonexty" and fig.data[3].fill == "tonexty"
    np.testing.assert_allclose(fig.data[5].y, res.equity.to_numpy())
    b = boot.bands
    assert (b["p05"] <= b["p25"]).all() and (b["p25"] <= b["p50"]).all() and (b["p75"] <= b["p95"]).all()
    assert "<table" in boot._repr_html_()
    assert isinstance(boot, BootstrapResult)


def test_portfolio_result():
    frames = {s: qlm.sample_data("synthetic", n=1500, seed=k) for s, k in (("A", 2), ("B", 3))}
    u = qlm.Universe("pair", frames)
    pres = qlm.backtest_portfolio("sma_cross", u, fast=10, slow=50, record=False)
    boot = bootstrap(pres, n=100, seed=0)
    assert boot.table.loc["final_value", "observed"] == pytest.approx(float(pres.stats["final_value"]))
    shuffled = bootstrap(pres, n=50, seed=0, method="trades")
    np.testing.assert_allclose(shuffled.samples["final_value"], float(pres.stats["final_value"]), rtol=1e-10)


def test_bad_input_is_named(res):
    df = qlm.sample_data("synthetic", n=300, seed=1)
    flat = np.zeros(len(df), dtype=bool)
    never = qlm.backtest(qlm.Signals(entry_long=flat, exit_long=flat), df, record=False)
    with pytest.raises(DataError) as err:
        bootstrap(never)
    assert err.value.code == "NO_TRADES" and err.value.hint
    one = qlm.backtest("sma_cross", df.iloc[:2], fast=5, slow=10, record=False)
    with pytest.raises(QLMError) as err:
        bootstrap(one)
    assert err.value.code in ("TOO_FEW_BARS", "NO_TRADES") and err.value.hint
    with pytest.raises(ConfigError, match="method"):
        bootstrap(res, method="jackknife")
    with pytest.raises(ConfigError):
        bootstrap(res, confidence=1.5)
    with pytest.raises(ConfigError):
        bootstrap(res, n=1)
    with pytest.raises(ConfigError):
        bootstrap(res, block_size=0)
    few = qlm.backtest("sma_cross", df.iloc[:120], fast=5, slow=60, record=False)
    assert int((few.trades["status"] == "closed").sum()) == 1
    with pytest.raises(DataError) as err:
        bootstrap(few, method="trades")
    assert err.value.code == "TOO_FEW_TRADES" and "method='block'" in err.value.hint
    bootstrap(few, n=20, seed=0)  # the block bootstrap still works on one closed trade


def test_the_result_method_is_the_function() -> None:
    """``res.bootstrap(...)`` is `bootstrap(res, ...)`: same seed, same table."""
    from qlm_kernel.engine.bootstrap import bootstrap as bootstrap_fn

    res = qlm.backtest("sma_cross", qlm.sample_data("synthetic", n=2000, seed=3), record=False)
    a = res.bootstrap(n=200, seed=5)
    b = bootstrap_fn(res, n=200, seed=5)
    pd.testing.assert_frame_equal(a.table, b.table)
