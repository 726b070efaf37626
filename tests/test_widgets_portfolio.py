"""PortfolioReport: the title, warnings, the portfolio stats and the per-symbol table are `res.stats` and
`res.symbol_stats` formatted as the report page formats them; the chart is `res.plot()` (updated in
place); a failed run shows the error panel. In a real headless Chromium (Voilà page): the numbers
shown equal the in-process result's, and the plotly graph draws every trace without a JS error."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nbformat
import pytest

import qlm_kernel as qlm
from qlm_kernel.engine.report import portfolio as P
from qlm_kernel.errors import ConfigError
from qlm_kernel.formatting import STAT_FORMATS, format_stat, stat_rows, stat_text, warning_rows
from qlm_kernel.widgets import BacktestReport, PortfolioReport, show
from qlm_kernel.widgets.live import STATIC
from qlm_kernel.widgets.portfolio import SYMBOL_COLUMNS
from tests.browser_helpers import CHROMIUM, artifacts_dir, chromium_page, real_page_errors
from tests.voila_helpers import free_port, isolated_env, serve

RENDER_TIMEOUT_MS = 180_000

UNIVERSE = """
import qlm_kernel as qlm

frames = {f"S{j}": qlm.sample_data("synthetic", n=1_500, seed=40 + j) for j in range(4)}
frames["S3"] = frames["S3"].iloc[300:]   # one symbol starts late
universe = qlm.load_universe(frames, name="demo")
res = qlm.backtest_portfolio("sma_cross", universe, fast=8, slow=40, size=0.25, size_type="percent",
                             fees=0.001, record=False)
few = qlm.backtest_portfolio("sma_cross", universe, fast=60, slow=250, record=False)   # a FEW_TRADES warning
"""


def _run() -> dict:
    scope: dict = {}
    exec(UNIVERSE, scope)  # the same code the browser page runs
    return scope


@pytest.fixture(scope="module")
def ran() -> dict:
    return _run()


@pytest.fixture(scope="module")
def res(ran):
    return ran["res"]


def _expected_symbol_cells(res) -> dict[str, dict[str, str]]:
    frame = res.symbol_stats
    return {
        str(sym): {key: format_stat(kind, row[key].item()) for key, _, kind in SYMBOL_COLUMNS}
        for sym, row in frame.iterrows()
    }


def test_summary_is_the_results_stats_and_symbol_stats_formatted(res) -> None:
    report = PortfolioReport(res)
    s = report.summary
    assert s.title == f"Portfolio {P.title(res)}" == "Portfolio SmaCross(fast=8, slow=40) on demo (4 symbols)"
    assert s.universe == "demo" and s.symbols == ["S0", "S1", "S2", "S3"]
    assert s.stats == stat_rows(res.stats)
    shown = dict(s.stats)
    assert shown["Final value"] == stat_text("final_value", res.stats["final_value"])
    assert shown["Trades"] == f"{int(res.stats['n_trades']):,}"
    assert s.warnings == warning_rows(res.warnings)
    cells = {row["symbol"]: dict(row["cells"]) for row in s.symbol_rows}
    assert cells == _expected_symbol_cells(res)
    # the same texts as the portfolio report page's per-symbol table
    assert [(r["symbol"], [list(c) for c in r["cells"]]) for r in P.symbol_rows(res)] == [
        (r["symbol"], r["cells"]) for r in s.symbol_rows
    ]
    assert [c[0] for c in s.symbol_columns] == [k for k, _, _ in P.SYMBOL_COLUMNS]
    assert s.error is None and s.more_symbols == 0


def test_warnings_are_the_results(ran) -> None:
    few = ran["few"]
    rows = PortfolioReport(few, chart=False).summary.warnings
    assert rows == warning_rows(few.warnings) and [w["code"] for w in rows] == ["FEW_TRADES"]
    assert rows[0]["message"] and rows[0]["hint"]


def test_chart_is_the_portfolio_figure_and_updates_in_place(ran, res) -> None:
    report = PortfolioReport(res)
    fig = res.plot(max_points=report.max_points)
    chart = report.chart
    assert [(t.type, t.name) for t in chart.data] == [(t.type, t.name) for t in fig.data]
    assert chart.data[-1].type == "heatmap" and list(chart.data[-1].x) == ["S0", "S1", "S2", "S3"]
    assert isinstance(chart.data[0].x[0], str)  # naive UTC text: plotly.js parses it as a date
    assert list(chart.data[0].y) == pytest.approx(list(fig.data[0].y))
    assert report.children == (report.summary, chart)
    before = list(chart.data[0].y)
    res2 = qlm.backtest_portfolio("sma_cross", ran["universe"], fast=20, slow=80, size=0.25,
                                  size_type="percent", record=False)
    report.update(res2)
    assert report.chart is chart and list(chart.data[0].y) != before
    assert dict(report.summary.stats)["Final value"] == stat_text("final_value", res2.stats["final_value"])
    assert report.summary.title.startswith("Portfolio SmaCross(fast=20, slow=80)")


def test_errors_show_the_panel_and_show_picks_the_portfolio_widget(ran, res) -> None:
    failed = PortfolioReport.run({"ZZZ": qlm.Signals()}, ran["universe"], record=False)
    err = failed.summary.error
    assert err["code"] == "UNKNOWN_SYMBOL" and err["message"] and failed.summary.title.endswith("failed")
    assert failed.children == (failed.summary,) and failed.summary.symbol_rows == []
    assert PortfolioReport(ValueError("boom")).summary.error["code"] == "UNEXPECTED"
    with pytest.raises(ConfigError):
        PortfolioReport(qlm.backtest("sma_cross", qlm.sample_data("synthetic", n=500, seed=0)))
    assert isinstance(show(res), PortfolioReport)
    assert isinstance(show(qlm.backtest("sma_cross", qlm.sample_data("synthetic", n=500, seed=0))),
                      BacktestReport)
    ok = PortfolioReport.run("sma_cross", ran["universe"], record=False, fast=8, slow=40, size=0.25,
                             size_type="percent", fees=0.001)
    assert ok.summary.stats == stat_rows(res.stats)
    assert qlm.widgets.PortfolioReport is PortfolioReport


def test_static_files_ship_inside_the_package() -> None:
    assert "export default { render }" in (STATIC / "portfolio.js").read_text()
    assert (STATIC / "portfolio.css").stat().st_size > 0


def _page(folder: Path) -> Path:
    display = """
from IPython.display import display
from qlm_kernel.widgets import PortfolioReport

report = PortfolioReport(res)
report.add_class("qlmw-test-portfolio")
display(report)
warned = PortfolioReport(few, chart=False)
warned.add_class("qlmw-test-few")
display(warned)
"""
    book = nbformat.v4.new_notebook()
    book.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    book.cells = [nbformat.v4.new_code_cell(src.strip()) for src in (UNIVERSE, display)]
    path = folder / "portfolio_page.ipynb"
    nbformat.write(book, path)
    return path


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium missing")
def test_the_browser_shows_the_results_numbers_and_draws_the_figure(tmp_path: Path, ran, res) -> None:
    env = isolated_env(tmp_path)
    pages = tmp_path / "pages"
    pages.mkdir()
    _page(pages)
    port = free_port()
    voila = shutil.which("voila", path=str(Path(sys.executable).parent)) or "voila"
    cmd = [voila, str(pages), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
           "--show_tracebacks=True"]
    errors: list[str] = []
    with serve(cmd, env, port, tmp_path / "voila.log") as url, chromium_page(viewport=(1400, 2400)) as page:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url + "voila/render/portfolio_page.ipynb", timeout=RENDER_TIMEOUT_MS)
        root = ".qlmw-test-portfolio"
        try:  # the kernel may compile the portfolio kernels first (a changed Numba cache on a busy box)
            page.wait_for_selector(f"{root} .qlmw-portfolio[data-status='done']", timeout=RENDER_TIMEOUT_MS)
        except Exception as exc:
            log = (tmp_path / "voila.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"the portfolio widget did not render; voila log:\n{log}") from exc
        page.wait_for_selector(f"{root} .js-plotly-plot", timeout=RENDER_TIMEOUT_MS)
        page.wait_for_function(
            "(sel) => { const p = document.querySelector(sel + ' .js-plotly-plot');"
            " return p && p.data && p.data.length && p.querySelectorAll('.scatterlayer .trace').length; }",
            arg=root,
            timeout=30_000,
        )
        assert page.inner_text(f"{root} .qlmw-title") == f"Portfolio {P.title(res)}"
        assert "S0, S1, S2, S3" in page.inner_text(f"{root} .qlmw-portfolio-facts")
        # every portfolio stat, as the widget's table shows it
        shown = dict(page.eval_on_selector_all(
            f"{root} .qlmw-portfolio-stats td[data-stat]",
            "tds => tds.map(td => [td.dataset.stat, td.innerText])",
        ))
        assert shown == dict(stat_rows(res.stats)) and len(shown) > 10
        assert set(shown) >= {STAT_FORMATS[k][0] for k in ("total_return", "max_drawdown", "n_trades")}
        assert shown["Final value"] == stat_text("final_value", res.stats["final_value"])
        assert shown["Sharpe"] == stat_text("sharpe", res.stats["sharpe"])
        # the per-symbol table: each symbol's row is its symbol_stats row, formatted
        cells = page.eval_on_selector_all(
            f"{root} .qlmw-portfolio-symbols tbody tr",
            "trs => trs.map(tr => [tr.dataset.symbol,"
            " Object.fromEntries([...tr.querySelectorAll('td')].map(td => [td.dataset.col, td.innerText]))])",
        )
        assert dict(cells) == _expected_symbol_cells(res)
        assert dict(cells)["S1"]["pnl"] == format_stat("money", float(res.symbol_stats.loc["S1", "pnl"]))
        # the figure: every trace of res.plot() drawn, the heat map included, and no JS error
        fig = res.plot(max_points=2_000)
        drawn = page.evaluate(
            "(sel) => { const p = document.querySelector(sel + ' .js-plotly-plot');"
            " return { n: p.data.length, names: p.data.map(t => t.name), types: p.data.map(t => t.type),"
            " lines: p.querySelectorAll('.scatterlayer .trace').length,"
            " heat: p.querySelectorAll('.heatmaplayer .hm, .heatmaplayer image').length,"
            " first: p.data[0].x[0], last: p.data[0].y[p.data[0].y.length - 1] }; }",
            root,
        )
        assert drawn["n"] == len(fig.data) and drawn["names"] == [t.name for t in fig.data]
        assert drawn["types"].count("heatmap") == 1 and drawn["heat"] >= 1
        assert drawn["lines"] == sum(t.type == "scatter" for t in fig.data)
        assert drawn["first"].startswith(str(res.equity.index[0].date()))
        assert drawn["last"] == pytest.approx(float(res.equity.iloc[-1]), rel=1e-6)
        # a run with warnings: each shown with its code, message and why it matters
        page.wait_for_selector(".qlmw-test-few .qlmw-report-warning", timeout=30_000)
        warned = page.eval_on_selector_all(
            ".qlmw-test-few .qlmw-report-warning", "rows => rows.map(r => [r.dataset.code, r.innerText])"
        )
        assert [code for code, _ in warned] == [w["code"] for w in ran["few"].warnings] == ["FEW_TRADES"]
        assert ran["few"].warnings[0]["message"] in warned[0][1]
        page.locator(root).screenshot(path=str(artifacts_dir() / "portfolio-report.png"))
    assert real_page_errors(errors) == []


def test_symbol_columns_are_the_report_pages_labels_and_formats_too() -> None:
    # a copy (widgets may not import qlm_kernel.engine): keys, labels and format kinds all match
    assert SYMBOL_COLUMNS == P.SYMBOL_COLUMNS


def test_both_summaries_share_one_copy_of_the_report_helpers() -> None:
    from qlm_kernel.widgets.portfolio import PortfolioSummary
    from qlm_kernel.widgets.report import BacktestSummary

    kit = (STATIC / "reportkit.js").read_text()
    for widget, own in ((PortfolioSummary, "portfolio.js"), (BacktestSummary, "report.js")):
        esm = str(widget._esm)
        assert esm.startswith(kit) and esm.endswith((STATIC / own).read_text())
        assert esm.count("function el(") == esm.count("function errorPanel(") == 1
        assert esm.count("export default { render }") == 1
