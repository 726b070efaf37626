"""`PortfolioReport`: a portfolio backtest's title (strategy, universe, symbols), warnings, the portfolio
stats, the per-symbol table and the portfolio figure (``res.plot()``: equity vs equal-weight buy & hold,
drawdown, stacked weights, P&L by symbol, correlation; already decimated), or the structured error
panel when the run failed."""

from __future__ import annotations

from typing import Any

import anywidget
import ipywidgets
import traitlets as t

from qlm_kernel.errors import ConfigError, QLMError
from qlm_kernel.formatting import call_text, format_stat, stat_rows, warning_rows
from qlm_kernel.widgets.compact import compact
from qlm_kernel.widgets.live import STATIC, stylesheet
from qlm_kernel.widgets.report import _naive_utc_times

SYMBOL_COLUMNS: tuple[tuple[str, str, str], ...] = (  # symbol_stats column -> (label, format kind)
    ("n_trades", "Trades", "int"),
    ("n_closed", "Closed", "int"),
    ("win_rate", "Win rate", "pct"),
    ("pnl", "P&L", "money"),
    ("fees", "Fees", "money"),
    ("contribution", "Contribution", "pct"),
    ("exposure", "Exposure", "pct"),
    ("turnover", "Turnover", "ratio"),
    ("buy_hold_return", "Buy & hold return", "pct"),
)
"""The per-symbol table's columns, labelled and formatted as the portfolio report page does."""
MAX_SYMBOL_ROWS = 500
"""Rows of the per-symbol table sent to the browser (the rest are counted in a note)."""


def portfolio_title(res: Any) -> str:
    """``Portfolio SmaCross(fast=10, slow=50) on trio (3 symbols)``."""
    params = dict(getattr(res, "params", {}) or {})
    m = len(res.symbols)
    name = getattr(res.data, "name", None) or "universe"
    return (f"Portfolio {call_text(getattr(res, 'strategy_name', ''), params)} on {name} "
            f"({m} symbol{'s' if m != 1 else ''})")


def symbol_table(res: Any, *, max_rows: int = MAX_SYMBOL_ROWS) -> list[dict[str, Any]]:
    """``[{symbol, cells: [[key, text], ...]}, ...]`` of ``res.symbol_stats`` (`SYMBOL_COLUMNS`, each
    formatted with `qlm_kernel.formatting.format_stat`)."""
    frame = res.symbol_stats
    rows = []
    for sym, row in list(frame.iterrows())[:max_rows]:
        cells = [[key, format_stat(kind, _plain(row[key]))] for key, _, kind in SYMBOL_COLUMNS if key in row]
        rows.append({"symbol": str(sym), "cells": cells})
    return rows


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


class PortfolioSummary(anywidget.AnyWidget):
    """The header (title, universe and symbols), warnings, portfolio stats, per-symbol table and the
    error panel of a `PortfolioReport`."""

    _esm = STATIC / "portfolio.js"
    _css = stylesheet("report.css") + (STATIC / "portfolio.css").read_text(encoding="utf-8")

    title = t.Unicode("").tag(sync=True)
    universe = t.Unicode("").tag(sync=True)
    symbols = t.List().tag(sync=True)  # [symbol, ...]
    params = t.Dict().tag(sync=True)
    stats = t.List().tag(sync=True)  # [[label, text], ...]
    symbol_columns = t.List().tag(sync=True)  # [[key, label], ...]
    symbol_rows = t.List().tag(sync=True)  # [{symbol, cells: [[key, text], ...]}, ...]
    more_symbols = t.Int(0).tag(sync=True)  # rows left out of symbol_rows
    warnings = t.List().tag(sync=True)  # [{code, message, hint}, ...]
    error = t.Dict(allow_none=True, default_value=None).tag(sync=True)


class PortfolioReport(ipywidgets.VBox):
    """``PortfolioReport(res)`` for a `PortfolioResult` (``qlm.backtest_portfolio``), or
    ``PortfolioReport(err)`` for a failed run; `update` swaps in a new result in place."""

    def __init__(
        self, result_or_error: Any = None, *, chart: bool = True, max_points: int = 2_000, **kwargs: Any
    ) -> None:
        self.summary = PortfolioSummary()
        self.chart: Any = None
        self.show_chart = chart
        self.max_points = max_points
        self.result: Any = None
        super().__init__(children=[self.summary], **kwargs)
        self.add_class("qlmw-portfolio-report")
        if result_or_error is not None:
            self.update(result_or_error)

    @classmethod
    def run(cls, strategy: Any, universe: Any, **kwargs: Any) -> PortfolioReport:
        """Run ``qlm.backtest_portfolio(strategy, universe, **kwargs)`` and show the result or its error."""
        from qlm_kernel.session import backtest_portfolio

        try:
            return cls(backtest_portfolio(strategy, universe, **kwargs))
        except QLMError as err:
            return cls(err)

    def update(self, result_or_error: Any) -> None:
        """Show a new `PortfolioResult`, or a `QLMError` (any exception, or its ``to_dict()``) as the
        error panel."""
        if isinstance(result_or_error, (BaseException, dict)):
            self._show_error(result_or_error)
        elif all(hasattr(result_or_error, a) for a in ("stats", "symbol_stats", "symbols", "plot")):
            self._show_result(result_or_error)
        else:
            raise ConfigError(
                f"PortfolioReport shows a PortfolioResult or an error, got {type(result_or_error).__name__}",
                hint="PortfolioReport(qlm.backtest_portfolio(...)); one asset's result: BacktestReport(res)",
            )

    # -- internals --------------------------------------------------------------------------------
    def _show_result(self, res: Any) -> None:
        self.result = res
        rows = symbol_table(res)
        with self.summary.hold_sync():
            self.summary.title = portfolio_title(res)
            self.summary.universe = str(getattr(res.data, "name", None) or "")
            self.summary.symbols = [str(s) for s in res.symbols]
            self.summary.params = compact(dict(getattr(res, "params", {}) or {}), max_chars=100)
            self.summary.stats = stat_rows(res.stats)
            self.summary.symbol_columns = [[key, label] for key, label, _ in SYMBOL_COLUMNS]
            self.summary.symbol_rows = rows
            self.summary.more_symbols = max(0, len(res.symbols) - len(rows))
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
            self.summary.title = "Portfolio backtest failed"
            self.summary.stats = []
            self.summary.symbol_rows = []
            self.summary.more_symbols = 0
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
            same = [(tr.type, tr.name) for tr in chart.data] == [(tr.type, tr.name) for tr in fig.data]
            with chart.batch_update():
                if same:
                    for old, new in zip(chart.data, fig.data, strict=True):
                        old.update(new.to_plotly_json(), overwrite=True)
                else:
                    chart.data = ()
                    chart.add_traces(list(fig.data))
                chart.layout = fig.layout
        self.children = [self.summary, self.chart]
