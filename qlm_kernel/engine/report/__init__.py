"""The backtest tearsheet: derived series, display decimation, chart panels, tables and the HTML page.

`report_html` (``res.report_html`` / ``res.save_report``) and `backtest_figure` (``res.plot``) are the
entry points; plotly is imported only when a Figure is built (the HTML page needs only its script).
"""

from __future__ import annotations

from qlm_kernel.engine.report.decimate import m4_indices
from qlm_kernel.engine.report.html import report_html
from qlm_kernel.engine.report.panels import backtest_figure

__all__ = ["backtest_figure", "m4_indices", "report_html"]
