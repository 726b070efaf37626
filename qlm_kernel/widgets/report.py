"""`BacktestReport`: a backtest's title, warnings, stats table and the tearsheet's plotly chart (``res.plot``:
price and trades, equity vs buy & hold, drawdown, exposure), or the structured error panel if it failed."""

from __future__ import annotations

from typing import Any

from qlm_kernel.formatting import call_text, stat_rows, warning_rows
from qlm_kernel.widgets.compact import compact
from qlm_kernel.widgets.live import stylesheet
from qlm_kernel.widgets.reportkit import ReportSummary, ResultReport, esm


class BacktestSummary(ReportSummary):
    """The header, the stats table and the error panel of a `BacktestReport`."""

    _esm = esm("report.js")
    _css = stylesheet("report.css")


class BacktestReport(ResultReport):
    """``BacktestReport(res)`` for a `BacktestResult`, or ``BacktestReport(err)`` for a failed run;
    `update` swaps in a new result in place (the chart's traces are updated, not re-created)."""

    summary_class = BacktestSummary
    box_class = "qlmw-backtest-report"
    result_attrs = ("stats", "plot")
    result_kind = "BacktestResult"
    usage_hint = "BacktestReport(qlm.backtest(...)) or BacktestReport.run(strategy, data, **params)"
    failed_title = "Backtest failed"

    @classmethod
    def run(cls, strategy: Any, data: Any = None, **kwargs: Any) -> BacktestReport:
        """Backtest with ``qlm.backtest(strategy, data, **kwargs)`` and show the result or its error."""
        from qlm_kernel.session import backtest

        return cls._run(backtest, strategy, data, **kwargs)

    # -- internals --------------------------------------------------------------------------------
    def _show_result(self, res: Any) -> None:
        self.result = res
        with self.summary.hold_sync():
            params = dict(getattr(res, "params", {}) or {})
            self.summary.title = f"Backtest {call_text(getattr(res, 'strategy_name', ''), params)}"
            self.summary.params = compact(params, max_chars=100)
            self.summary.stats = stat_rows(res.stats)
            self.summary.warnings = warning_rows(getattr(res, "warnings", None) or [])
            self.summary.error = None
        if self.show_chart:
            self._draw(res.plot(max_points=self.max_points))
