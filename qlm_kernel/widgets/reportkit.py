"""What `BacktestReport` and `PortfolioReport` share: the summary widget's common traits and ES module
prelude (``static/reportkit.js``), and the report box -- a summary over a plotly chart -- that shows a
result, or a failed run's structured error panel, and updates the chart in place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import anywidget
import ipywidgets
import traitlets as t

from qlm_kernel.errors import ConfigError, QLMError
from qlm_kernel.widgets.compact import compact
from qlm_kernel.widgets.live import STATIC


def esm(name: str) -> str:
    """The ES module of a report summary: ``static/reportkit.js`` (el, errorPanel, statsTable,
    renderReport, ...) then ``static/<name>`` (anywidget loads ``_esm`` from a blob URL, so the widget's
    code cannot import a sibling file)."""
    return "\n".join((STATIC / f).read_text(encoding="utf-8") for f in ("reportkit.js", name))


class ReportSummary(anywidget.AnyWidget):
    """The traits every report summary has (a subclass sets ``_esm``, ``_css`` and adds its own)."""

    title = t.Unicode("").tag(sync=True)
    params = t.Dict().tag(sync=True)
    stats = t.List().tag(sync=True)  # [[key, text], ...]
    warnings = t.List().tag(sync=True)  # [{code, message, hint}, ...] (result.warnings)
    error = t.Dict(allow_none=True, default_value=None).tag(sync=True)


def error_record(err: Any) -> dict[str, Any]:
    """A `QLMError`'s ``to_dict()``; any other exception as an ``UNEXPECTED`` one; a dict as it is."""
    if isinstance(err, QLMError):
        return err.to_dict()
    if isinstance(err, BaseException):
        return QLMError(f"{type(err).__name__}: {err}", code="UNEXPECTED").to_dict()
    return dict(err)


class ResultReport(ipywidgets.VBox):
    """A summary widget over the result's plotly chart; a subclass names its summary class, the result's
    attributes, the texts and fills the summary in `_show_result`."""

    summary_class: ClassVar[type[ReportSummary]]
    box_class: ClassVar[str]
    result_attrs: ClassVar[tuple[str, ...]]  # what the shown result has (duck typing)
    result_kind: ClassVar[str]  # "BacktestResult" in "... shows a BacktestResult or an error"
    usage_hint: ClassVar[str]
    failed_title: ClassVar[str]

    def __init__(
        self, result_or_error: Any = None, *, chart: bool = True, max_points: int = 2_000, **kwargs: Any
    ) -> None:
        self.summary = self.summary_class()
        self.chart: Any = None
        self.show_chart = chart
        self.max_points = max_points
        self.result: Any = None
        super().__init__(children=[self.summary], **kwargs)
        self.add_class(self.box_class)
        if result_or_error is not None:
            self.update(result_or_error)

    @classmethod
    def _run(cls, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return cls(fn(*args, **kwargs))
        except QLMError as err:
            return cls(err)

    def update(self, result_or_error: Any) -> None:
        """Show a new result, or a `QLMError` (any exception, or its ``to_dict()``) as the error panel."""
        if isinstance(result_or_error, (BaseException, dict)):
            self._show_error(result_or_error)
        elif all(hasattr(result_or_error, a) for a in self.result_attrs):
            self._show_result(result_or_error)
        else:
            name = type(self).__name__
            raise ConfigError(
                f"{name} shows a {self.result_kind} or an error, got {type(result_or_error).__name__}",
                hint=self.usage_hint,
            )

    # -- internals --------------------------------------------------------------------------------
    def _show_result(self, res: Any) -> None:
        raise NotImplementedError

    def _clear_summary(self) -> None:
        """Empty the result's parts of the summary (under its ``hold_sync``) for the error panel."""
        self.summary.stats = []
        self.summary.warnings = []

    def _show_error(self, err: Any) -> None:
        self.result = None
        record = error_record(err)
        with self.summary.hold_sync():
            self.summary.title = self.failed_title
            self._clear_summary()
            self.summary.error = compact(record, max_chars=6000)
        self.children = [self.summary]

    @staticmethod
    def _trace_key(trace: Any) -> Any:
        """Traces are updated in place when the new figure's keys are the chart's, else replaced."""
        return trace.type

    def _draw(self, fig: Any) -> None:
        import plotly.graph_objects as go

        naive_utc_times(fig)
        if self.chart is None:
            self.chart = go.FigureWidget(fig)
        else:
            chart = self.chart
            same = [self._trace_key(tr) for tr in chart.data] == [self._trace_key(tr) for tr in fig.data]
            with chart.batch_update():
                if same:
                    for old, new in zip(chart.data, fig.data, strict=True):
                        old.update(new.to_plotly_json(), overwrite=True)
                else:
                    chart.data = ()
                    chart.add_traces(list(fig.data))
                chart.layout = fig.layout
        self.children = [self.summary, self.chart]


def naive_utc_times(fig: Any) -> None:
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
