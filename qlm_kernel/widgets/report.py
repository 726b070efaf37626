"""`BacktestReport`: a backtest's title, warnings, stats table and the tearsheet's plotly chart (``res.plot``:
price and trades, equity vs buy & hold, drawdown, exposure), or the structured error panel if it failed."""

from __future__ import annotations

from typing import Any

import anywidget
import ipywidgets
import traitlets as t

from qlm_kernel.errors import ConfigError, QLMError
from qlm_kernel.formatting import call_text, stat_rows, warning_rows
from qlm_kernel.widgets.compact import compact
from qlm_kernel.widgets.live import STATIC, stylesheet


class BacktestSummary(anywidget.AnyWidget):
    """The header, the stats table and the error panel of a `BacktestReport`."""

    _esm = STATIC / "report.js"
    _css = stylesheet("report.css")

    title = t.Unicode("").tag(sync=True)
    params = t.Dict().tag(sync=True)
    stats = t.List().tag(sync=True)  # [[key, text], ...]
    warnings = t.List().tag(sync=True)  # [{code, message, hint}, ...] (result.warnings)
    error = t.Dict(allow_none=True, default_value=None).tag(sync=True)


class BacktestReport(ipywidgets.VBox):
    """``BacktestReport(res)`` for a `BacktestResult`, or ``BacktestReport(err)`` for a failed run;
    `update` swaps in a new result in place (the chart's traces are updated, not re-created)."""

    def __init__(
        self, result_or_error: Any = None, *, chart: bool = True, max_points: int = 2_000, **kwargs: Any
    ) -> None:
        self.summary = BacktestSummary()
        self.chart: Any = None
        self.show_chart = chart
        self.max_points = max_points
        self.result: Any = None
        super().__init__(children=[self.summary], **kwargs)
        self.add_class("qlmw-backtest-report")
        if result_or_error is not None:
            self.update(result_or_error)

    @classmethod
    def run(cls, strategy: Any, data: Any = None, **kwargs: Any) -> BacktestReport:
        """Backtest with ``qlm.backtest(strategy, data, **kwargs)`` and show the result or its error."""
        from qlm_kernel.session import backtest

        try:
            return cls(backtest(strategy, data, **kwargs))
        except QLMError as err:
            return cls(err)

    def update(self, result_or_error: Any) -> None:
        """Show a new `BacktestResult`, or a `QLMError` (any exception, or its ``to_dict()``) as the panel."""
        if isinstance(result_or_error, (BaseException, dict)):
            self._show_error(result_or_error)
        elif hasattr(result_or_error, "stats") and hasattr(result_or_error, "plot"):
            self._show_result(result_or_error)
        else:
            raise ConfigError(
                f"BacktestReport shows a BacktestResult or an error, got {type(result_or_error).__name__}",
                hint="BacktestReport(qlm.backtest(...)) or BacktestReport.run(strategy, data, **params)",
            )

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

    def _show_error(self, err: Any) -> None:
        self.result = None
        if isinstance(err, QLMError):
            record = err.to_dict()
        elif isinstance(err, BaseException):
            record = QLMError(f"{type(err).__name__}: {err}", code="UNEXPECTED").to_dict()
        else:
            record = dict(err)
        with self.summary.hold_sync():
            self.summary.title = "Backtest failed"
            self.summary.stats = []
            self.summary.warnings = []
            self.summary.error = compact(record, max_chars=6000)
        self.children = [self.summary]

    def _draw(self, fig: Any) -> None:
        import plotly.graph_objects as go

        _naive_utc_times(fig)
        if self.chart is None:
            self.chart = go.FigureWidget(fig)
        else:
            chart = self.chart
            same = [tr.type for tr in chart.data] == [tr.type for tr in fig.data]
            with chart.batch_update():
                if same:
                    for old, new in zip(chart.data, fig.data, strict=True):
                        old.update(new.to_plotly_json(), overwrite=True)
                else:
                    chart.data = ()
                    chart.add_traces(list(fig.data))
                chart.layout = fig.layout
        self.children = [self.summary, self.chart]


def _naive_utc_times(fig: Any) -> None:
    """Write time axes (tz-aware stamps or datetime64 arrays) as naive UTC text: the widget serializer
    sends them in forms plotly.js does not parse as dates (points vanish); the static renderer is fine."""
    import numpy as np
    import pandas as pd

    for trace in fig.data:
        x = getattr(trace, "x", None)
        if x is None or len(x) == 0:
            continue
        if isinstance(x, np.ndarray) and x.dtype.kind == "M":
            trace.x = pd.DatetimeIndex(x).strftime("%Y-%m-%d %H:%M:%S").to_numpy()
        elif isinstance(x[0], pd.Timestamp) and x[0].tz is not None:
            trace.x = pd.DatetimeIndex(x).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S").to_numpy()
