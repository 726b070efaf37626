"""`OverfitReportView`: the one overfitting report in a notebook — its verdict, every check with its own
verdict, and a plotly figure per check (`qlm.sanity.report`); or the structured error panel if it failed."""

from __future__ import annotations

from typing import Any

import traitlets as t

from qlm_kernel.errors import ConfigError, QLMError
from qlm_kernel.widgets.compact import compact
from qlm_kernel.widgets.live import stylesheet
from qlm_kernel.widgets.reportkit import ReportSummary, error_record, esm, naive_utc_times


class OverfitSummary(ReportSummary):
    """The verdict and the checks' table of an `OverfitReportView`."""

    _esm = esm("overfit.js")
    _css = stylesheet("overfit.css")
    verdict = t.Unicode("").tag(sync=True)
    passed = t.Bool(False).tag(sync=True)
    checks = t.List().tag(sync=True)  # [{name, passed, verdict}, ...]


class OverfitReportView:
    """``OverfitReportView(report)`` for an `OverfitReport` (or ``OverfitReportView(err)``): a VBox of the
    summary and one chart per check; ``.widget`` is that box (displayed in place of this object)."""

    def __init__(self, report_or_error: Any, *, charts: bool = True) -> None:
        import ipywidgets

        self.summary = OverfitSummary()
        self.charts: dict[str, Any] = {}
        self.widget = ipywidgets.VBox(children=[self.summary])
        self.widget.add_class("qlmw-overfit-report")
        if isinstance(report_or_error, (BaseException, dict)):
            self._show_error(report_or_error)
        elif hasattr(report_or_error, "checks") and hasattr(report_or_error, "figures"):
            self._show(report_or_error, charts)
        else:
            raise ConfigError(f"OverfitReportView shows an OverfitReport or an error, got "
                              f"{type(report_or_error).__name__}",
                              hint="OverfitReportView(qlm.sanity.report(opt)) or OverfitReportView.run(opt)")

    @classmethod
    def run(cls, subject: Any, **kwargs: Any) -> OverfitReportView:
        """``qlm.sanity.report(subject, **kwargs)`` shown, or its error."""
        from qlm_kernel.session import overfitting_report

        try:
            return cls(overfitting_report(subject, **kwargs))
        except QLMError as err:
            return cls(err)

    def _show(self, rep: Any, charts: bool) -> None:
        import plotly.graph_objects as go

        with self.summary.hold_sync():
            self.summary.title = "Overfitting report"
            self.summary.verdict = rep.verdict
            self.summary.passed = bool(rep.passed)
            self.summary.checks = [{"name": c.name, "passed": bool(c.passed), "verdict": c.verdict}
                                   for c in rep.checks]
            self.summary.error = None
        if charts:
            for name, fig in rep.figures().items():
                naive_utc_times(fig)
                chart = go.FigureWidget(fig)
                self.charts[name] = chart
        self.widget.children = [self.summary, *self.charts.values()]

    def _show_error(self, err: Any) -> None:
        with self.summary.hold_sync():
            self.summary.title = "Overfitting report failed"
            self.summary.checks = []
            self.summary.error = compact(error_record(err), max_chars=6000)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
