"""The backtest engine: Numba kernels over (bars x columns) arrays and their thin Python wrapper.

It knows nothing of SQLite, MCP or widgets: arrays in, `BacktestResult` out.
"""

from __future__ import annotations

from qlm_kernel.engine.api import as_ohlcv_frame, backtest, simulate
from qlm_kernel.engine.result import BacktestResult
from qlm_kernel.engine.settings import SETTING_NAMES, BacktestSettings

__all__ = ["SETTING_NAMES", "BacktestResult", "BacktestSettings", "as_ohlcv_frame", "backtest", "simulate"]
