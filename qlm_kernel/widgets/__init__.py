"""Jupyter widgets (anywidget) that show QLM's work live: optimization jobs, heal sessions, backtests
and the event bus. They subscribe to the kernel's bus, so a job started anywhere in the kernel — a
cell, a background thread, an MCP assistant — shows up in a widget that is already open.

- `OptimizationProgress(job_id=None)`: bar, done/total, rate, ETA, best so far, chart, Cancel.
- `HealingTrace(session_id=None)` / `HealingTrace.from_report(rep)`: the heal timeline.
- `BacktestReport(res_or_error)`: stats table and plotly chart, or the structured error panel.
- `PortfolioReport(res_or_error)`: a portfolio run's title, warnings, stats, per-symbol table and figure.
- `OverfitReportView(qlm.sanity.report(...))`: the overfitting report's verdict, checks and figures.
- `EventLog(pattern="*", max_events=200)`: live events with a topic filter.
- `PaperPnL(session_id=None)`: live equity curve, P&L, position, orders and fills of a paper session.
- `Dashboard()`: dataset or universe and strategy pickers, sliders and a live report (Voilà).
"""

from __future__ import annotations

from typing import Any

from qlm_kernel.widgets.dashboard import Dashboard
from qlm_kernel.widgets.eventlog import EventLog
from qlm_kernel.widgets.healing import HealingTrace
from qlm_kernel.widgets.overfit import OverfitReportView
from qlm_kernel.widgets.paper import PaperPnL
from qlm_kernel.widgets.portfolio import PortfolioReport
from qlm_kernel.widgets.progress import OptimizationProgress
from qlm_kernel.widgets.report import BacktestReport, BacktestSummary

__all__ = [
    "BacktestReport",
    "BacktestSummary",
    "Dashboard",
    "EventLog",
    "HealingTrace",
    "OptimizationProgress",
    "OverfitReportView",
    "PaperPnL",
    "PortfolioReport",
    "show",
]


def show(obj: Any) -> Any:
    """The widget for ``obj``: a `PortfolioResult` -> `PortfolioReport`, a `BacktestResult` or error ->
    `BacktestReport`, a `HealReport` -> `HealingTrace`, an `OptimizationResult` -> `OptimizationProgress`
    of its job, an `OverfitReport` -> `OverfitReportView`."""
    if hasattr(obj, "checks") and hasattr(obj, "figures"):
        return OverfitReportView(obj)
    if hasattr(obj, "steps") and hasattr(obj, "session_id"):
        return HealingTrace.from_report(obj)
    if hasattr(obj, "job_id") and hasattr(obj, "best_params"):
        return OptimizationProgress(obj.job_id)
    if hasattr(obj, "symbol_stats") and hasattr(obj, "symbols"):
        return PortfolioReport(obj)
    return BacktestReport(obj)
