"""BacktestReport (stats, chart updated in place, error panel), the Voilà Dashboard, the static files,
and an MCP assistant's job showing up in a widget that was already open."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

import qlm_kernel as qlm
import qlm_kernel.mcp
from qlm_kernel.engine.report import tables
from qlm_kernel.errors import ConfigError
from qlm_kernel.widgets import BacktestReport, Dashboard, EventLog, OptimizationProgress, show
from qlm_kernel.widgets.live import STATIC
from tests.mcp_helpers import SMALL_SAMPLE, http_client, structured
from tests.widget_helpers import BROKEN


@pytest.fixture(scope="module")
def df():
    return qlm.sample_data("synthetic", n=2_000, seed=0)


def test_report_shows_stats_and_updates_the_chart_in_place(df) -> None:
    report = BacktestReport(qlm.backtest("sma_cross", df, fast=10, slow=50))
    stats = dict(report.summary.stats)
    assert stats["Trades"].replace(",", "").isdigit() and stats["Total return"].endswith("%")
    assert "Sharpe" in stats
    assert "Buy & hold return" in stats and "benchmark_return" not in stats  # human labels, as the CLI
    assert report.summary.params == {"fast": 10, "slow": 50} and report.summary.error is None
    chart = report.chart
    assert [t.name for t in chart.data][:1] == ["close"] and len(report.children) == 2
    assert isinstance(chart.data[0].x[0], str)  # naive UTC text: plotly.js parses it as a date
    equity_before = list(chart.data[3].y)
    report.update(qlm.backtest("sma_cross", df, fast=20, slow=80))
    assert report.chart is chart  # same FigureWidget, traces updated
    assert list(chart.data[3].y) != equity_before
    assert dict(report.summary.stats)["Sharpe"] != stats["Sharpe"]


def test_report_title_and_warnings_are_the_tearsheets(df) -> None:
    res = qlm.backtest("sma_cross", qlm.sample_data("synthetic", n=3_000, seed=0), fast=50, slow=200)
    res.strategy_name = "X"
    res.params = {"a": np.int64(5), "b": np.float64(0.25), "c": "fast", "d": np.bool_(True), "e": 1.0}
    report = BacktestReport(res, chart=False)
    assert report.summary.title == "Backtest X(a=5, b=0.25, c='fast', d=True, e=1)"
    assert "np." not in report.summary.title and "a=5" in report.summary.title
    assert report.summary.title == f"Backtest {tables.title(res)}"  # the tearsheet's title, the same text
    assert report.summary.warnings == tables.warnings(res) and any(
        w["code"] == "FEW_TRADES" for w in report.summary.warnings
    )


def test_report_shows_the_structured_error(df) -> None:
    failed = BacktestReport.run(qlm.Signals(entry_long=[True] * 3), df)
    error = failed.summary.error
    assert (error["type"], error["code"]) == ("StrategyError", "BAD_SIGNALS")
    assert error["hint"] and error["traceback"] and failed.children == (failed.summary,)
    other = BacktestReport(ValueError("boom"))
    assert other.summary.error["code"] == "UNEXPECTED" and "boom" in other.summary.error["message"]
    with pytest.raises(ConfigError):
        BacktestReport(42)
    assert isinstance(show(qlm.backtest("sma_cross", df)), BacktestReport)


def test_dashboard_sliders_rerun_the_backtest(tmp_path, df) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text(BROKEN)
    dash = Dashboard(
        datasets={"small": lambda: df},
        strategies={"sma_cross": "sma_cross", "rsi_reversion": "rsi_reversion", "broken": broken},
    )
    assert dash.params() == {"fast": 10, "slow": 50} and dash.runs == 1
    before = dash.report.summary.stats
    dash.sliders.children[0].value = 25
    assert dash.runs == 2 and dash.report.summary.stats != before and dash.report.summary.params["fast"] == 25
    dash.fees.value = 20
    assert dash.runs == 3
    dash.strategy.value = "rsi_reversion"
    assert list(dash.params()) == ["period", "lower", "upper"]
    dash.strategy.value = "broken"
    assert dash.params() == {"fast": 10, "slow": 50}  # the class loads; signals() fails
    assert dash.report.summary.error["code"] == "STRATEGY_RUNTIME"
    assert "failed" in dash.status.value


def test_static_files_ship_inside_the_package() -> None:
    for name in ("progress", "healing", "report", "eventlog"):
        esm = (STATIC / f"{name}.js").read_text()
        assert re.search(r"export default \{ render \}", esm)
        assert (STATIC / f"{name}.css").stat().st_size > 0
    assert STATIC.parent == Path(qlm.widgets.__file__).parent  # inside qlm_kernel/: in the wheel


def test_a_job_started_by_an_mcp_assistant_shows_up_in_an_open_widget(home) -> None:
    progress = OptimizationProgress()  # open before the assistant does anything
    log = EventLog("mcp.tool.*")
    server = qlm_kernel.mcp.start()
    try:

        async def assistant():
            async with http_client(server) as client:
                return structured(
                    await client.call_tool(
                        "optimize_parameters",
                        {
                            "strategy": "sma_cross",
                            "sample": SMALL_SAMPLE,
                            "method": "grid",
                            "space": {"fast": [5, 10, 15], "slow": [40, 60]},
                        },
                    )
                )

        out = asyncio.run(assistant())
    finally:
        server.stop()
    progress.wait_idle()
    log.wait_idle()
    assert progress.job_id == out["job_id"]
    assert (progress.status, progress.done, progress.total) == ("done", 6, 6)
    assert progress.best_params == out["best_params"]
    assert {"mcp.tool.called", "mcp.tool.finished"} <= set(log.topics())
    progress.close(), log.close()


def test_the_title_and_warning_rows_are_written_by_formatting(df) -> None:
    from qlm_kernel import formatting

    params = {"a": np.int64(5), "b": np.float64(0.25), "c": "fast", "d": np.bool_(True), "e": 1.0,
              "f": [1, 2]}
    assert formatting.call_text("X", params) == "X(a=5, b=0.25, c='fast', d=True, e=1, f=[1, 2])"
    texts = [formatting.param_text(v) for v in params.values()]
    assert texts == ["5", "0.25", "'fast'", "True", "1", "[1, 2]"]
    res = qlm.backtest("sma_cross", qlm.sample_data("synthetic", n=3_000, seed=0), fast=50, slow=200)
    res.params = params
    assert formatting.call_text(res.strategy_name, res.params) == tables.title(res)
    assert formatting.warning_rows(res.warnings) == tables.warnings(res) and res.warnings
    assert formatting.warning_rows([{"code": "C"}]) == [{"code": "C", "message": "", "hint": ""}]
    report = BacktestReport(res, chart=False)
    assert report.summary.title == f"Backtest {formatting.call_text(res.strategy_name, res.params)}"
