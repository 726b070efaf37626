"""The backtest engine: Numba kernels over (bars x columns) arrays and their thin Python wrapper.

Arrays in, arrays out: it knows nothing of strategies, files, SQLite, MCP or widgets. Running a
strategy through it is `qlm_kernel.strategy.run`; `BacktestResult` wraps what the kernel returns.
"""

from __future__ import annotations

from qlm_kernel.engine.api import as_ohlcv_frame, price_arrays, simulate
from qlm_kernel.engine.result import BacktestResult
from qlm_kernel.engine.settings import SETTING_NAMES, BacktestSettings

__all__ = [
    "SETTING_NAMES",
    "BacktestResult",
    "BacktestSettings",
    "as_ohlcv_frame",
    "price_arrays",
    "simulate",
]
