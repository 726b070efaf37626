"""The portfolio report (`PortfolioResult.plot` / `report_html`, `qlm_kernel.engine.report.portfolio`):
equity and buy & hold traces equal the result's at the bars kept, stacked weights sum to the net and
gross weights recomputed here from positions and prices, each symbol's cumulative P&L ends at its
trades' P&L, the heat map is the correlation; the page parses, escapes, shows every symbol, the stats
as the tearsheet formats them and the warnings; the size stays bounded; a browser draws it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import lxml.html
import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel.engine.report import encode, tables
from qlm_kernel.engine.report import portfolio as P
from qlm_kernel.engine.report.decimate import DEFAULT_BUCKETS
from qlm_kernel.errors import ConfigError
from qlm_kernel.formatting import stat_text
from qlm_kernel.strategy.signals import Signals
from tests.browser_helpers import CHROMIUM, artifacts_dir, chromium_page

INIT = 10_000.0


def _universe(name: str = "demo", n: int = 3_000, m: int = 4, late: bool = True):
    frames = {f"S{j}": qlm.sample_data("synthetic", n=n, seed=20 + j) for j in range(m)}
    if late:  # one symbol starts later: missing bars, valued from its first close on
        frames[f"S{m - 1}"] = frames[f"S{m - 1}"].iloc[n // 6 :]
    return qlm.load_universe(frames, name=name)


def _random_signals(u, seed: int, p: float = 0.02) -> Signals:
    rng = np.random.default_rng(seed)
    n, m = u.close.shape
    fields = ("entry_long", "exit_long", "entry_short", "exit_short")
    return Signals(
        **{f: pd.DataFrame(rng.random((n, m)) < p, index=u.index, columns=list(u.symbols)) for f in fields}
    )


@pytest.fixture(scope="module")
def universe():
    return _universe()


@pytest.fixture(scope="module")
def res(universe):
    """Longs and shorts on four symbols (one starting late), percent sizing, fees."""
    return qlm.backtest_portfolio(
        _random_signals(universe, 1), universe, size=0.3, size_type="percent", fees=0.001, direction="both"
    )


@pytest.fixture(scope="module")
def fig(res):
    return res.plot()


@pytest.fixture(scope="module")
def page(res) -> str:
    return res.report_html(plotlyjs="cdn")


def traces_on(fig, axis: str) -> list:
    return [tr for tr in fig.data if tr.yaxis == axis]


def bars_of(res, x) -> np.ndarray:
    """Positions in the result's index of a trace's naive-UTC times."""
    stamps = pd.DatetimeIndex(np.asarray(x, dtype="datetime64[ns]")).tz_localize("UTC")
    pos = res.data.index.get_indexer(stamps)
    assert (pos >= 0).all()
    return pos


def numpy_weights(res) -> np.ndarray:
    """Weights from scratch: signed units (from the orders) x last close / equity."""
    o = res.orders
    n, m = len(res.data), len(res.symbols)
    col = o["symbol"].cat.codes.to_numpy().astype(int)
    units = np.where(o["side"] == "buy", 1.0, -1.0) * o["size"].to_numpy()
    held = np.zeros((n, m))
    np.add.at(held, (o["bar"].to_numpy(), col), units)
    held = np.cumsum(held, axis=0)
    price = np.nan_to_num(res.data.valuation_close)
    return held * price / res.equity.to_numpy()[:, None]


# --- derived series and the figure ----------------------------------------------------------------------
def test_scenario_has_shorts_missing_bars_and_trades_everywhere(res) -> None:
    assert res.stats["n_short"] > 20 and res.stats["n_long"] > 20
    assert not res.data.has_bar[:100, 3].any() and (res.symbol_stats["n_trades"] > 20).all()
    assert (res.trades["status"] == "open").any()  # open trades count in the P&L too


def test_symbol_pnl_ends_at_each_symbols_trade_pnl_and_sums_to_equity(res) -> None:
    pnl = P.symbol_pnl(res)
    assert list(pnl.columns) == list(res.symbols) and pnl.index.equals(res.data.index)
    by_trades = res.trades.groupby("symbol", observed=False)["pnl"].sum()  # closed + open
    for sym in res.symbols:
        assert pnl[sym].iloc[-1] == pytest.approx(res.symbol_stats.loc[sym, "pnl"], rel=1e-9, abs=1e-7)
        assert pnl[sym].iloc[-1] == pytest.approx(by_trades[sym], rel=1e-9, abs=1e-7)
    # realized + open P&L of all symbols is the portfolio's gain at every bar
    np.testing.assert_allclose(pnl.sum(axis=1), res.equity - INIT, rtol=0, atol=1e-6)
    assert (pnl["S3"].iloc[:100] == 0).all()  # nothing before its first bar


def test_equity_and_benchmark_traces_equal_the_result_at_the_kept_bars(res, fig) -> None:
    equity, bench = traces_on(fig, "y")
    assert equity.name == "portfolio" and bench.name == "equal-weight buy & hold"
    pos = bars_of(res, equity.x)
    np.testing.assert_allclose(equity.y, res.equity.to_numpy()[pos], rtol=1e-6)
    np.testing.assert_allclose(bench.y, INIT * res._close[bars_of(res, bench.x)], rtol=1e-6)
    assert bench.y[0] == pytest.approx(INIT)  # scaled to the initial cash
    assert bench.y[-1] == pytest.approx(INIT * (1 + res.stats["benchmark_return"]), rel=1e-6)
    dd, _ = traces_on(fig, "y2")
    np.testing.assert_allclose(dd.y, res.drawdown.to_numpy()[bars_of(res, dd.x)], rtol=1e-6, atol=1e-7)
    # the time axis is shared by every time panel; the heat map has its own
    assert {tr.xaxis for tr in fig.data if tr.type == "scatter"} == {"x"}
    assert fig.layout.xaxis.anchor == "y4"
    assert fig.layout.title.text == "Signals() on demo (4 symbols)"


def test_long_series_are_decimated_keeping_extremes(res) -> None:
    small = res.plot(max_points=400)
    equity = traces_on(small, "y")[0]
    pos = bars_of(res, equity.x)
    assert len(pos) <= 400 < len(res.data)
    eq = res.equity.to_numpy()
    assert {0, len(eq) - 1, int(eq.argmax()), int(eq.argmin())} <= set(pos.tolist())
    np.testing.assert_allclose(equity.y, eq[pos], rtol=1e-6)
    for tr in traces_on(small, "y3") + traces_on(small, "y4"):
        assert len(tr.y) <= 400


def test_stacked_weights_sum_to_net_and_gross_weights(res, fig) -> None:
    traces = traces_on(fig, "y3")
    stacked = [tr for tr in traces if tr.stackgroup]
    net_line = next(tr for tr in traces if tr.name == "net")
    longs = [tr for tr in stacked if tr.stackgroup == "long"]
    shorts = [tr for tr in stacked if tr.stackgroup == "short"]
    assert {tr.meta for tr in longs} == {tr.meta for tr in shorts} == set(res.symbols)
    pos = bars_of(res, stacked[0].x)
    for tr in stacked:  # one shared x, so the stacks line up
        assert np.array_equal(bars_of(res, tr.x), pos)
    w = numpy_weights(res)[pos]
    net, gross = w.sum(axis=1), np.abs(w).sum(axis=1)
    total = np.sum([tr.y for tr in stacked], axis=0, dtype=float)
    np.testing.assert_allclose(total, net, atol=1e-6)
    np.testing.assert_allclose(np.sum([np.abs(tr.y) for tr in stacked], axis=0), gross, atol=1e-6)
    np.testing.assert_allclose(
        np.sum([tr.y for tr in longs], axis=0), np.clip(w, 0, None).sum(axis=1), atol=1e-6
    )
    assert all((tr.y >= 0).all() for tr in longs) and all((tr.y <= 0).all() for tr in shorts)
    np.testing.assert_allclose(net_line.y, net, atol=1e-6)
    assert gross.max() > 0.5 and (w < 0).any()
    # per symbol the trace is that symbol's part
    j = res.symbols.index("S1")
    s1 = next(tr for tr in longs if tr.meta == "S1")
    np.testing.assert_allclose(s1.y, np.clip(w[:, j], 0, None), atol=1e-6)


def test_symbol_pnl_traces_end_at_symbol_stats_pnl(res, fig) -> None:
    traces = {tr.meta: tr for tr in traces_on(fig, "y4")}
    assert set(traces) == set(res.symbols)
    full = P.symbol_pnl(res)
    for sym, tr in traces.items():
        pos = bars_of(res, tr.x)
        assert pos[-1] == len(res.data) - 1
        assert float(tr.y[-1]) == pytest.approx(res.symbol_stats.loc[sym, "pnl"], rel=1e-6, abs=1e-3)
        np.testing.assert_allclose(tr.y, full[sym].to_numpy()[pos], rtol=1e-6, atol=1e-3)


def test_heat_map_is_the_correlation(res, fig) -> None:
    (heat,) = [tr for tr in fig.data if tr.type == "heatmap"]
    corr = res.correlation
    assert list(heat.x) == list(heat.y) == list(res.symbols)
    np.testing.assert_array_equal(np.asarray(heat.z, dtype=float), corr.to_numpy())
    assert heat.zmin == -1 and heat.zmax == 1
    # an independent look: S0/S1 returns over the bars both have
    r = pd.DataFrame(res.data.close, columns=list(res.symbols)).pct_change()
    assert corr.loc["S0", "S1"] == pytest.approx(r["S0"].corr(r["S1"]), rel=1e-12)


def test_point_budget_of_the_symbol_panels() -> None:
    assert P.trace_points(4, 8_000) == 8_000
    assert P.trace_points(100, 8_000) == P.SYMBOL_POINTS // 100
    assert P.trace_points(10_000, 8_000) == P.MIN_TRACE_POINTS


# --- the page --------------------------------------------------------------------------------------------
def data_doc(text: str) -> dict:
    blob = re.search(r'<script type="application/octet-stream" id="qlm-data"[^>]*>([^<]*)</script>', text)
    return json.loads(encode.unpack(blob.group(1)))


def decode(doc: dict, trace: dict) -> tuple[np.ndarray, np.ndarray]:
    """A trace's (epoch ms, values) as the page's script decodes them."""
    t = doc["times"]
    ms = (t["t0"] + np.concatenate(([0], np.cumsum(t["d"], dtype=np.int64)))) * t["unit_ms"]
    x = ms[np.cumsum(trace["x"]["$t"])]
    y = trace["y"]
    if isinstance(y, dict):
        y = y["lo"] + np.cumsum(y["$q"]) * y["step"]
    return x, np.asarray(y, dtype=float)


def test_page_parses_with_title_facts_stats_and_settings(res, page) -> None:
    root = lxml.html.document_fromstring(page)
    assert root.xpath("string(//h1[@id='qlm-title'])") == "Signals() on demo (4 symbols)"
    facts = {s.get("data-fact"): s.text_content() for s in root.xpath("//span[@class='fact']")}
    assert facts["Universe"] == "Universe demo" and facts["Symbols"] == "Symbols 4: S0, S1, S2, S3"
    assert facts["Bars"] == "Bars 3,000" and facts["Span"].startswith("Span 2020-01-01 to ")
    assert facts["Data"] == "Data synthetic (generated, not a market)"
    # the stats: the tearsheet's groups, labels and formats; equal-weight buy & hold beside them
    for key in ("total_return", "sharpe", "max_drawdown", "n_trades", "fees_paid"):
        (row,) = root.xpath(f"//div[@id='qlm-stats']//tr[@data-stat='{key}']")
        assert row.xpath("string(td[1])") == stat_text(key, res.stats[key])
    (ret,) = root.xpath("//tr[@data-stat='total_return']")
    assert ret.xpath("string(td[@class='bench'])") == stat_text("total_return", res.stats["benchmark_return"])
    assert root.xpath("string(//tr[@data-stat='sharpe']/th)") == "Sharpe"
    shown = root.xpath("//div[@id='qlm-stats']//tr/@data-stat")
    assert sorted(shown) == sorted(str(k) for k in res.stats.index)
    (fees,) = root.xpath("//table[@id='qlm-settings']//tr[@data-setting='fees']")
    assert fees.get("class") == "changed" and fees.xpath("string(td)") == "0.10%"
    assert root.xpath("//section[@id='qlm-warnings']") == []  # a healthy run: no banner
    assert [s.get("data-panel") for s in root.xpath("//section[@class='panel']")] == [
        "symbols",
        "equity",
        "drawdown",
        "weights",
        "pnl",
        "correlation",
    ]
    assert root.xpath("//script[@src]")[0].get("src") == encode.plotlyjs_cdn_url()


def test_page_lists_every_symbol_with_its_pnl(res, page) -> None:
    root = lxml.html.document_fromstring(page)
    stats = res.symbol_stats
    rows = root.xpath("//table[@id='qlm-symbols']/tbody/tr")
    assert [r.get("data-symbol") for r in rows] == list(res.symbols)
    for row in rows:
        sym = row.get("data-symbol")
        cell = {td.get("data-col"): td.text_content() for td in row.xpath("td")}
        assert cell["pnl"] == f"{stats.loc[sym, 'pnl']:,.2f}"
        assert cell["n_trades"] == f"{stats.loc[sym, 'n_trades']:,}"
        assert cell["win_rate"] == f"{stats.loc[sym, 'win_rate'] * 100:,.2f}%"
        assert cell["contribution"] == f"{stats.loc[sym, 'contribution'] * 100:,.2f}%"
    headers = root.xpath("//table[@id='qlm-symbols']/thead//th/text()")
    assert headers[:5] == ["Symbol", "Trades", "Closed", "Win rate", "P&L"]
    (total,) = root.xpath("//table[@id='qlm-symbols']/tfoot/tr")
    cell = {td.get("data-col"): td.text_content() for td in total.xpath("td")}
    assert cell["pnl"] == f"{res.equity.iloc[-1] - INIT:,.2f}"  # the symbols' P&L is the portfolio's
    assert cell["n_trades"] == f"{res.stats['n_trades']:,}" and cell["turnover"] == f"{res.turnover:,.3f}"


def test_page_data_decodes_to_the_results_series(res, page) -> None:
    doc = data_doc(page)
    panels = doc["panels"]
    assert list(panels) == ["equity", "drawdown", "weights", "pnl", "correlation"]
    ms = res.data.index.asi8 // 1_000_000
    x, y = decode(doc, panels["equity"]["data"][0])
    pos = np.searchsorted(ms, x)
    assert np.array_equal(ms[pos], x) and len(pos) == len(res.data)  # 3,000 bars: nothing dropped
    eq = res.equity.to_numpy()
    np.testing.assert_allclose(y, eq[pos], atol=(eq.max() - eq.min()) / 2**15)  # quantized to 1/32768
    heat = panels["correlation"]["data"][0]
    np.testing.assert_allclose(np.array(heat["z"], dtype=float), res.correlation.to_numpy(), rtol=1e-4)
    for tr in panels["pnl"]["data"]:
        _, y = decode(doc, tr)
        assert y[-1] == pytest.approx(res.symbol_stats.loc[tr["meta"], "pnl"], abs=1.0)


def test_text_is_escaped(universe) -> None:
    frames = {s: universe.frame(s) for s in universe.symbols[:2]}
    u = qlm.load_universe(frames, name='<b>x</b> & "y"')
    r = qlm.backtest_portfolio("sma_cross", u, fast=10, slow=50, size=0.5, size_type="percent")
    text = r.report_html(plotlyjs="cdn")
    assert "<b>x</b>" not in text
    assert "&lt;b&gt;x&lt;/b&gt; &amp; &quot;y&quot;" in text
    root = lxml.html.document_fromstring(text)
    assert root.xpath("string(//h1)") == 'SmaCross(fast=10, slow=50) on <b>x</b> & "y" (2 symbols)'
    assert root.xpath("string(//title)").startswith('SmaCross(fast=10, slow=50) on <b>x</b> & "y"')


def test_liquidation_and_few_trades_warnings_show(universe) -> None:
    r = qlm.backtest_portfolio(
        _random_signals(universe, 1),
        universe,
        size=1.0,
        size_type="percent",
        leverage=5,
        maintenance_margin=0.1,
        direction="both",
    )
    codes = [w["code"] for w in r.warnings]
    assert codes == ["LIQUIDATED", "FEW_TRADES"] and r.stats["liquidated"]
    root = lxml.html.document_fromstring(r.report_html(plotlyjs="cdn"))
    items = root.xpath("//section[@id='qlm-warnings']//li")
    assert [li.get("data-code") for li in items] == codes
    for li, w in zip(items, r.warnings, strict=True):
        assert li.xpath("string(span[@class='message'])") == w["message"]
        assert w["hint"] in li.text_content()
    assert "the portfolio was liquidated during the bar of" in items[0].text_content()
    assert "fewer than 30" in items[1].text_content()
    assert root.xpath("string(//tr[@data-stat='liquidated']/td[1])") == "yes"
    # after the liquidation nothing is held: every weight trace ends at zero
    fig = r.plot()
    liq = int(r.trades["exit_bar"].max())
    for tr in traces_on(fig, "y3"):
        if tr.stackgroup:
            assert (np.asarray(tr.y)[bars_of(r, tr.x) > liq] == 0).all()


def test_few_trades_warning_alone(universe) -> None:
    r = qlm.backtest_portfolio("sma_cross", universe, fast=100, slow=400, size=0.25, size_type="percent")
    assert r.stats["n_trades"] < 30 and [w["code"] for w in r.warnings] == ["FEW_TRADES"]
    root = lxml.html.document_fromstring(r.report_html(plotlyjs="cdn"))
    assert root.xpath("//section[@id='qlm-warnings']//li/@data-code") == ["FEW_TRADES"]


def test_bad_plotlyjs_is_a_config_error(res) -> None:
    with pytest.raises(ConfigError, match="plotlyjs='local'"):
        res.report_html(plotlyjs="local")


HTML_CDN_BOUND = 800_000
"""50 symbols x 20,000 bars with plotlyjs="cdn" measured 0.42 MB; 100 x 100,000 measured 0.60 MB."""


def test_size_of_50_symbols_by_20000_bars_stays_bounded() -> None:
    frames = {f"X{j:02d}": qlm.sample_data("synthetic", n=20_000, seed=100 + j) for j in range(50)}
    u = qlm.load_universe(frames, name="fifty")
    r = qlm.backtest_portfolio("sma_cross", u, fast=10, slow=50, size=0.02, size_type="percent")
    text = r.report_html(plotlyjs="cdn")
    assert len(text.encode()) < HTML_CDN_BOUND
    specs = P.panel_specs(r)
    assert sum(len(tr["y"]) for tr in specs["pnl"]["data"]) <= P.SYMBOL_POINTS
    stacked = [tr for tr in specs["weights"]["data"] if tr.get("stackgroup")]
    assert sum(len(tr["y"]) for tr in stacked) <= P.SYMBOL_POINTS
    assert all(len(tr["y"]) <= 4 * DEFAULT_BUCKETS for tr in specs["equity"]["data"])
    root = lxml.html.document_fromstring(text)
    assert len(root.xpath("//table[@id='qlm-symbols']/tbody/tr")) == 50
    assert len(data_doc(text)["panels"]["correlation"]["data"][0]["z"]) == 50
    fig = r.plot()
    assert (
        sum(len(tr.y) for tr in fig.data if tr.type == "scatter") <= 3 * 8_000 + 2 * P.SYMBOL_POINTS + 8_000
    )


def test_title_helper_matches_the_tearsheet_title(res) -> None:
    assert P.title(res) == f"{tables.title(res)} on demo (4 symbols)"


# --- in a browser ----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian chromium missing (scripts/ensure_chromium.sh)"
)
def test_saved_report_renders_every_panel_in_chromium(res, tmp_path: Path) -> None:
    path = Path(res.save_report(str(tmp_path / "portfolio.html")))
    with chromium_page((1400, 1000)) as pg:
        errors: list[str] = []
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda err: errors.append(str(err)))
        pg.goto(path.as_uri())
        pg.wait_for_function("() => document.body.dataset.rendered", timeout=60_000)
        assert pg.evaluate("() => document.body.dataset.rendered") == "1", errors
        assert errors == []
        assert pg.inner_text("#qlm-title") == "Signals() on demo (4 symbols)"
        expected = {"equity": 2, "drawdown": 2, "weights": 9, "pnl": 4, "correlation": 1}
        for name, n in expected.items():
            assert pg.locator(f"#panel-{name} .js-plotly-plot").count() == 1, name
            assert pg.evaluate(f"() => document.getElementById('chart-{name}').data.length") == n, name
            assert pg.locator(f"#chart-{name} .main-svg").count() >= 1, name
        assert pg.locator("#chart-correlation .hm, #chart-correlation image").count() >= 1
        assert pg.locator("#qlm-symbols tbody tr").count() == 4
        pg.screenshot(path=str(artifacts_dir() / "portfolio-report.png"), full_page=True)
