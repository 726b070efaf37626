"""The backtest tearsheet (`res.report_html` / `save_report` / `plot`): title, data line, settings,
grouped stats with buy & hold beside them (checked against an independent computation from the close
prices), warnings, monthly returns, M4 decimation, every trade in the table, and file size."""

from __future__ import annotations

import html
import itertools
import json
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import qlm_kernel as qlm
from qlm_kernel.engine import stats as engine_stats
from qlm_kernel.engine.report import encode, panels, series, tables
from qlm_kernel.engine.report.decimate import DEFAULT_BUCKETS, bucket_edges, m4_indices
from qlm_kernel.formatting import STAT_GROUPS, stat_groups, stat_text
from tests import bars


@pytest.fixture(scope="module")
def res():
    df = qlm.sample_data("synthetic", n=40_000, seed=1)
    return qlm.backtest("sma_cross", df, fast=10, slow=50, fees=0.001, sl_stop=0.05)


@pytest.fixture(scope="module")
def page(res) -> str:
    return res.report_html()


def data_doc(page: str) -> dict:
    """The page's packed data document (charts and trades), unpacked."""
    blob = re.search(r'<script type="application/octet-stream" id="qlm-data"[^>]*>([^<]*)</script>', page)
    return json.loads(encode.unpack(blob.group(1)))


def test_title_data_line_and_settings(res, page) -> None:
    assert tables.title(res) == "SmaCross(fast=10, slow=50)"
    assert '<h1 id="qlm-title">SmaCross(fast=10, slow=50)</h1>' in page
    assert "{&#x27;fast&#x27;" not in page and "{'fast'" not in page  # no dict repr anywhere
    facts = dict(tables.data_facts(res))
    assert facts["Bars"] == "40,000" and facts["Bar size"] == "1 hour"
    assert facts["Data"].startswith("synthetic") and facts["Span"].startswith("2020-01-01 to ")
    rows = {r["key"]: r for r in tables.settings_rows(res.settings)}
    assert rows["fees"]["label"] == "Fees (of traded value)" and rows["fees"]["text"] == "0.10%"
    assert rows["fees"]["changed"] and rows["sl_stop"]["changed"] and not rows["slippage"]["changed"]
    assert rows["size"]["text"] == "all available cash" and rows["fill"]["text"] == "signal bar's close"
    assert '<tr data-setting="fees" class="changed"><th>Fees (of traded value)</th><td>0.10%</td>' in page


def test_stats_are_grouped_with_labels_and_every_key_shows(res, page) -> None:
    groups = {g["group"]: g["rows"] for g in tables.stats_groups(res)}
    assert list(groups)[:4] == ["Returns", "Risk", "Trades", "Costs"]
    shown = [row["key"] for rows in groups.values() for row in rows]
    assert sorted(shown) == sorted(str(k) for k in res.stats.index)  # every stat, once
    for name, _ in STAT_GROUPS[:4]:
        assert f'<table class="stats" data-group="{name}"><caption>{name}</caption>' in page
    assert "<th>Sharpe</th>" in page and "<th>Max drawdown</th>" in page and "<th>Fees paid</th>" in page
    sharpe = next(r for r in groups["Risk"] if r["key"] == "sharpe")
    assert sharpe["text"] == stat_text("sharpe", res.stats["sharpe"]) and sharpe["benchmark"] is not None
    # a stat the formatter has never heard of still renders, in "Other"; a flag lands in Risk
    extra = pd.concat([res.stats, pd.Series({"liquidated": True, "brand_new_stat": 1.5})])
    by_group = dict(stat_groups(extra))
    assert "liquidated" in by_group["Risk"] and by_group["Other"] == ["brand_new_stat"]
    assert stat_text("liquidated", True) == "yes"


def test_benchmark_numbers_equal_an_independent_computation_from_close(res) -> None:
    close = res.data["close"]
    init = res.settings.init_cash
    r = close.pct_change().fillna(0.0)  # every bar: the first (bought at its close) returns 0
    years = (close.index[-1] - close.index[0]) / pd.Timedelta(days=365.25)
    bpy = (len(close) - 1) / years
    expected = {
        "total_return": close.iloc[-1] / close.iloc[0] - 1,
        "final_value": init * close.iloc[-1] / close.iloc[0],
        "cagr": (close.iloc[-1] / close.iloc[0]) ** (1 / years) - 1,
        "volatility": r.std() * np.sqrt(bpy),
        "sharpe": r.mean() / r.std() * np.sqrt(bpy),
        "sortino": r.mean() / np.sqrt((r.clip(upper=0) ** 2).mean()) * np.sqrt(bpy),
        "max_drawdown": (close / close.cummax() - 1).min(),
    }
    got = series.benchmark_stats(res)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key
    assert got["total_return"] == pytest.approx(res.stats["benchmark_return"], rel=1e-12)
    # the same function on the strategy's equity reproduces the engine's own numbers
    mine = series.perf_stats(res.equity.to_numpy(), init, res.data.index)
    for key in series.PERF_KEYS:
        assert mine[key] == pytest.approx(res.stats[key], rel=1e-9, abs=1e-12), key
    row = next(r for g in tables.stats_groups(res) for r in g["rows"] if r["key"] == "sharpe")
    assert row["benchmark"] == stat_text("sharpe", expected["sharpe"])


def test_strategy_numbers_are_the_engines_and_drawdown_is_shared(res) -> None:
    mine = series.strategy_stats(res)
    for key in series.PERF_KEYS:
        assert mine[key] == pytest.approx(res.stats[key], rel=1e-9, abs=1e-12), key
    init = res.settings.init_cash
    eq = res.equity.to_numpy()
    expected = eq / np.maximum.accumulate(np.maximum(eq, init)) - 1
    np.testing.assert_allclose(engine_stats.drawdown(eq, init), expected, rtol=0, atol=0)
    np.testing.assert_allclose(engine_stats.drawdown(eq, init), res.drawdown.to_numpy(), rtol=0, atol=0)
    assert engine_stats.drawdown(eq, init).min() == pytest.approx(res.stats["max_drawdown"], rel=1e-12)
    assert series.liquidation_bar(res) is None


@pytest.fixture(scope="module")
def ruined():
    """A leveraged short in a rising market: liquidated part-way, flat (and dead) afterwards."""
    rng = np.random.default_rng(4)
    close = 100 * np.exp(np.cumsum(rng.normal(0.004, 0.01, 300)))
    df = bars.frame(close, high=close * 1.002, low=close * 0.998, freq="1D")
    run = qlm.backtest(qlm.Signals(entry_short=bars.flags(300, 1)), df, leverage=2, record=False)
    assert run.stats["liquidated"]
    return run


def test_a_liquidated_runs_tearsheet_agrees_with_the_engine(ruined) -> None:
    bar = int(ruined.trades["exit_bar"].iloc[-1])
    assert series.liquidation_bar(ruined) == bar and 1 < bar < 299
    mine = series.strategy_stats(ruined)
    for key in series.PERF_KEYS:
        assert mine[key] == pytest.approx(ruined.stats[key], rel=1e-9, abs=1e-12, nan_ok=True), key
    # nothing is left after this ruin: the whole curve has no returns after it either (not zeros)
    whole = series.perf_stats(ruined.equity.to_numpy(), ruined.settings.init_cash, ruined.data.index)
    assert ruined.stats["final_value"] == 0.0
    assert whole["volatility"] == pytest.approx(ruined.stats["volatility"], rel=1e-12)
    risk = {r["key"]: r for g in tables.stats_groups(ruined) for r in g["rows"]}
    for key in ("sharpe", "volatility", "sortino"):
        assert risk[key]["text"] == stat_text(key, ruined.stats[key])
    # rolling risk ends at the liquidation too: nothing after it, values up to it
    returns = series.strategy_returns(ruined)
    assert returns.iloc[: bar + 1].notna().all() and returns.iloc[bar + 1 :].isna().all()
    spec = panels.panel_specs(ruined)["rolling"]
    sharpe = next(t for t in spec["data"] if t["name"] == "Sharpe")
    at = np.searchsorted(panels.times(ruined.data.index), sharpe["x"])
    assert np.isnan(np.asarray(sharpe["y"], dtype=float)[at > bar]).all()
    assert np.isfinite(np.asarray(sharpe["y"], dtype=float)[at == bar]).all()
    page = ruined.report_html(plotlyjs="cdn")
    assert f'<tr data-stat="sharpe"><th>Sharpe</th><td>{html.escape(risk["sharpe"]["text"])}</td>' in page


def kept_positions(spec_trace: dict, index: pd.DatetimeIndex) -> np.ndarray:
    """Bar numbers of a decimated line's points."""
    at = np.searchsorted(panels.times(index), spec_trace["x"])
    assert np.array_equal(panels.times(index)[at], spec_trace["x"])
    return at


def test_underwater_rolling_distribution_and_exposure_values(res) -> None:
    specs = panels.panel_specs(res)
    init = res.settings.init_cash
    eq = res.equity.to_numpy()
    close = res.data["close"].to_numpy()
    # underwater: equity / running peak (from the initial cash) - 1, and buy & hold's from the close
    under = {t["name"]: t for t in specs["drawdown"]["data"]}
    at = kept_positions(under["strategy"], res.data.index)
    expected = eq / np.maximum.accumulate(np.maximum(eq, init)) - 1
    np.testing.assert_allclose(under["strategy"]["y"], expected[at], atol=1e-6)
    assert float(np.min(under["strategy"]["y"])) == pytest.approx(res.stats["max_drawdown"], rel=1e-6)
    bench = close / close[0]
    at = kept_positions(under["buy & hold"], res.data.index)
    bench_dd = bench / np.maximum.accumulate(np.maximum(bench, 1)) - 1
    np.testing.assert_allclose(under["buy & hold"]["y"], bench_dd[at], atol=1e-6)
    # rolling Sharpe and volatility at a point of each line, from the returns with numpy
    window = specs["rolling"]["meta"]["window"]
    bpy = res.stats["bars_per_year"]
    strategy_r = eq / np.concatenate(([init], eq[:-1])) - 1
    bench_r = np.concatenate(([np.nan], close[1:] / close[:-1] - 1))
    checks = {
        "Sharpe": (strategy_r, lambda r: r.mean() / r.std(ddof=1) * np.sqrt(bpy)),
        "volatility": (strategy_r, lambda r: r.std(ddof=1) * np.sqrt(bpy)),
        "Sharpe, buy & hold": (bench_r, lambda r: r.mean() / r.std(ddof=1) * np.sqrt(bpy)),
        "volatility, buy & hold": (bench_r, lambda r: r.std(ddof=1) * np.sqrt(bpy)),
    }
    roll = {t["name"]: t for t in specs["rolling"]["data"]}
    for name, (r, stat) in checks.items():
        at = kept_positions(roll[name], res.data.index)
        k = len(at) // 2
        i = int(at[k])
        assert i >= window and np.isnan(roll[name]["y"][: np.searchsorted(at, window - 1)]).all(), name
        assert roll[name]["y"][k] == pytest.approx(stat(r[i - window + 1 : i + 1]), rel=1e-5), name
    # distributions: every bar in the market once, every closed trade once, centered where they are
    bars_h, trades_h = specs["distribution"]["data"]
    moved = eq[1:] / eq[:-1] - 1
    moved = moved[moved != 0]
    assert int(np.sum(bars_h["y"])) == len(moved)
    assert np.average(bars_h["x"], weights=bars_h["y"]) == pytest.approx(moved.mean(), abs=2e-4)
    closed = res.trades.loc[res.trades["status"] == "closed", "return"].to_numpy()
    assert int(np.sum(trades_h["y"])) == len(closed) == res.stats["n_closed"]
    assert np.average(trades_h["x"], weights=trades_h["y"]) == pytest.approx(closed.mean(), abs=2e-3)
    # exposure: position value / equity; the share of bars holding a position is stats["exposure"]
    ex_expected = res.position.to_numpy() * close / eq
    trace = specs["exposure"]["data"][0]
    at = kept_positions(trace, res.data.index)
    np.testing.assert_allclose(trace["y"], ex_expected[at], rtol=1e-6, atol=1e-7)
    ex = series.exposure(res).to_numpy()
    np.testing.assert_allclose(ex, ex_expected, rtol=1e-12)
    assert np.mean(ex != 0) == pytest.approx(res.stats["exposure"], rel=1e-12)


def test_monthly_and_yearly_returns_equal_a_pandas_resample(res) -> None:
    eq = res.equity
    month_end = eq.resample("ME").last()
    expected = month_end.pct_change()
    expected.iloc[0] = month_end.iloc[0] / res.settings.init_cash - 1
    got = series.period_returns(eq, res.settings.init_cash, "ME")
    pd.testing.assert_series_equal(got, expected, check_names=False, rtol=1e-12)
    table = series.monthly_table(got)
    assert table.shape[1] == 12 and table.loc[2020, 1] == pytest.approx(expected.iloc[0])
    yearly = series.period_returns(eq, res.settings.init_cash, "YE")
    assert (1 + yearly).prod() == pytest.approx(eq.iloc[-1] / res.settings.init_cash)
    heat = panels.panel_specs(res)["monthly"]["data"][0]
    assert np.allclose(np.asarray(heat["z"], dtype=float), table.to_numpy(), equal_nan=True, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 3_000), elements=st.floats(-1e6, 1e6, allow_nan=False)),
    st.integers(1, 200),
)
def test_m4_keeps_every_buckets_first_last_min_and_max(values, n_buckets) -> None:
    keep = m4_indices(values, n_buckets)
    assert np.all(np.diff(keep) > 0) and keep[0] == 0 and keep[-1] == len(values) - 1
    if len(values) <= 4 * n_buckets:
        assert len(keep) == len(values)
        return
    assert len(keep) <= 4 * n_buckets
    kept = set(keep.tolist())
    edges = bucket_edges(len(values), n_buckets)
    for a, b in itertools.pairwise(edges):
        chunk = values[a:b]
        assert a in kept and b - 1 in kept
        assert values[[i for i in range(a, b) if i in kept]].min() == chunk.min()
        assert values[[i for i in range(a, b) if i in kept]].max() == chunk.max()


def test_a_single_spike_survives_decimation() -> None:
    y = np.zeros(1_000_000)
    y[654_321] = 50.0
    keep = m4_indices(y, 2_000)
    assert 654_321 in keep and len(keep) <= 8_000


def test_every_trade_is_in_the_trades_table(res, page) -> None:
    trades = data_doc(page)["trades"]
    tr = res.trades
    assert trades["n"] == len(tr) > 300  # > MARKER_LIMIT: markers are grouped, the table is not
    assert f"Trades <small>({len(tr):,}, all of them" in page
    entry_s = np.cumsum(trades["entry"]) * trades["unit_s"]
    np.testing.assert_array_equal(entry_s, tr["entry_time"].astype("int64").to_numpy() // 1_000_000_000)
    held = np.asarray(trades["held"]) * trades["unit_s"]
    closed = (tr["status"] == "closed").to_numpy()
    exit_s = tr["exit_time"][closed].astype("int64").to_numpy() // 1_000_000_000
    np.testing.assert_array_equal(entry_s[closed] + held[closed], exit_s)
    np.testing.assert_allclose(trades["pnl"], tr["pnl"], atol=0.005)
    np.testing.assert_allclose(trades["entry_price"], tr["entry_price"], rtol=1e-5)
    np.testing.assert_allclose(trades["size"], tr["size"], rtol=1e-5)
    assert [trades["directions"][d] for d in trades["direction"]] == tr["direction"].astype(str).tolist()
    reasons = [trades["reasons"][k] for k in trades["reason"]]
    assert reasons == tr["exit_reason"].astype(str).tolist() and "stop_loss" in reasons
    # the page's Return column (pnl / (size x entry price)) is the engine's trade return
    ret = np.asarray(trades["pnl"]) / (np.asarray(trades["size"]) * np.asarray(trades["entry_price"]))
    np.testing.assert_allclose(ret, tr["return"], atol=5e-5)
    # grouped markers still name every trade: the hover ranges cover 1..n
    price = panels.panel_specs(res)["price"]["data"]
    entries = [t for t in price if t["name"].endswith("entry")]
    covered = set()
    for trace in entries:
        for text in trace.get("text", []):
            a, b = (re.findall(r"#(\d+)", text) * 2)[:2]
            covered |= set(range(int(a), int(b) + 1))
    assert covered == set(range(1, len(tr) + 1))


def test_warning_banner_says_why_when_few_trades() -> None:
    df = qlm.sample_data("synthetic", n=3_000, seed=0)
    few = qlm.backtest("sma_cross", df, fast=50, slow=200)
    assert 0 < few.stats["n_trades"] < 30
    page = few.report_html()
    banner = re.search(r'<section id="qlm-warnings".*?</section>', page, re.S).group(0)
    warning = next(w for w in few.warnings if w["code"] == "FEW_TRADES")
    assert 'data-code="FEW_TRADES"' in banner and html.escape(warning["message"]) in banner
    assert "Why it matters: " + html.escape(warning["hint"]) in banner
    assert page.index("qlm-warnings") < page.index('id="qlm-stats"')  # at the top
    assert "FEW_TRADES" in few._repr_html_()


def test_plotlyjs_is_inlined_exactly_once_and_cdn_links_it(res, page) -> None:
    assert page.count('id="qlm-plotlyjs"') == 1 and page.count("<script src=") == 0
    assert encode.unpack(encode.packed_plotlyjs()).startswith("/**")  # plotly.js itself, packed
    cdn = res.report_html(plotlyjs="cdn")
    assert 'id="qlm-plotlyjs"' not in cdn and cdn.count('<script src="https://cdn.plot.ly/plotly-') == 1
    with pytest.raises(qlm.errors.ConfigError):
        res.report_html(plotlyjs="nope")


def test_panels_have_stable_ids_and_traces(res, page) -> None:
    for name in panels.PANELS:
        assert f'<section class="panel" id="panel-{name}" data-panel="{name}">' in page
    assert 'data-panel="trades"' in page
    doc = data_doc(page)
    assert list(doc["panels"]) == list(panels.PANELS)
    assert all(doc["panels"][name]["data"] for name in panels.PANELS)
    menus = doc["panels"]["equity"]["layout"]["updatemenus"][0]["buttons"]
    assert [b["label"] for b in menus] == ["linear", "log"]


def test_plot_is_one_figure_with_the_shared_panels(res) -> None:
    fig = res.plot()
    names = [t.name for t in fig.data]
    assert names[:4] == ["close", "long entry", "short entry", "exit"]
    assert {"equity", "buy & hold", "drawdown", "exposure"} <= set(names)
    assert fig.layout.title.text == "SmaCross(fast=10, slow=50)"
    assert all(len(t.x) <= 8_000 for t in fig.data if t.mode == "lines")


def test_short_data_still_renders() -> None:
    df = qlm.sample_data("synthetic", n=60, seed=3)
    tiny = qlm.backtest("sma_cross", df, fast=3, slow=8)
    page = tiny.report_html()
    window, label = series.rolling_window(tiny.stats["bars_per_year"], 60)
    assert 2 <= window <= 15 and "bars" in label
    assert data_doc(page)["panels"]["rolling"]["data"]


@pytest.mark.slow
def test_a_million_bar_report_stays_small(tmp_path) -> None:
    df = qlm.sample_data("synthetic", n=1_000_000, seed=0)
    res = qlm.backtest("sma_cross", df, fast=50, slow=200)
    inline = tmp_path / "inline.html"
    cdn = tmp_path / "cdn.html"
    res.save_report(str(inline))
    res.save_report(str(cdn), plotlyjs="cdn")
    assert inline.stat().st_size <= 4_500_000
    assert cdn.stat().st_size <= 300_000
    doc = data_doc(inline.read_text())
    assert doc["trades"]["n"] == len(res.trades)
    # the price line is decimated (at most four points a bucket) and grouped exit markers name every
    # closed trade's exit
    price = {t["name"]: t for t in doc["panels"]["price"]["data"]}
    assert len(price["close"]["x"]["$t"]) <= 4 * DEFAULT_BUCKETS < len(res.data)
    assert len(price["close"]["y"]["$q"]) == len(price["close"]["x"]["$t"])
    tr = res.trades
    assert len(tr) > panels.MARKER_LIMIT
    closed = set((np.flatnonzero((tr["status"] == "closed").to_numpy()) + 1).tolist())
    covered = set()
    for text in price["exit"]["text"]:
        a, b = (re.findall(r"#(\d+)", text) * 2)[:2]
        covered |= set(range(int(a), int(b) + 1))
    assert covered == closed
