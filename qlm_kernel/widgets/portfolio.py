"""`PortfolioReport`: a portfolio backtest's title (strategy, universe, symbols), warnings, the portfolio
stats, the per-symbol table and the portfolio figure (``res.plot()``: equity vs equal-weight buy & hold,
drawdown, stacked weights, P&L by symbol, correlation; already decimated), or the structured error
panel when the run failed."""

from __future__ import annotations

from typing import Any

import traitlets as t

from qlm_kernel.formatting import SYMBOL_COLUMNS, call_text, format_stat, stat_rows, warning_rows
from qlm_kernel.widgets.compact import compact
from qlm_kernel.widgets.live import STATIC, stylesheet
from qlm_kernel.widgets.reportkit import ReportSummary, ResultReport, esm

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


class PortfolioSummary(ReportSummary):
    """The header (title, universe and symbols), warnings, portfolio stats, per-symbol table and the
    error panel of a `PortfolioReport` (title, params, stats, warnings and error: `ReportSummary`)."""

    _esm = esm("portfolio.js")
    _css = stylesheet("report.css") + (STATIC / "portfolio.css").read_text(encoding="utf-8")

    universe = t.Unicode("").tag(sync=True)
    symbols = t.List().tag(sync=True)  # [symbol, ...]
    symbol_columns = t.List().tag(sync=True)  # [[key, label], ...]
    symbol_rows = t.List().tag(sync=True)  # [{symbol, cells: [[key, text], ...]}, ...]
    more_symbols = t.Int(0).tag(sync=True)  # rows left out of symbol_rows


class PortfolioReport(ResultReport):
    """``PortfolioReport(res)`` for a `PortfolioResult` (``qlm.backtest_portfolio``), or
    ``PortfolioReport(err)`` for a failed run; `update` swaps in a new result in place."""

    summary_class = PortfolioSummary
    box_class = "qlmw-portfolio-report"
    result_attrs = ("stats", "symbol_stats", "symbols", "plot")
    result_kind = "PortfolioResult"
    usage_hint = "PortfolioReport(qlm.backtest_portfolio(...)); one asset's result: BacktestReport(res)"
    failed_title = "Portfolio backtest failed"

    @classmethod
    def run(cls, strategy: Any, universe: Any, **kwargs: Any) -> PortfolioReport:
        """Run ``qlm.backtest_portfolio(strategy, universe, **kwargs)`` and show the result or its error."""
        from qlm_kernel.session import backtest_portfolio

        return cls._run(backtest_portfolio, strategy, universe, **kwargs)

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

    def _clear_summary(self) -> None:
        self.summary.stats = []
        self.summary.symbol_rows = []
        self.summary.more_symbols = 0
        self.summary.warnings = []

    @staticmethod
    def _trace_key(trace: Any) -> Any:
        return (trace.type, trace.name)  # the symbols' traces are named: another universe redraws
