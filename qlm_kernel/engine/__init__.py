"""The backtest engine: Numba kernels over (bars x columns) arrays and their thin Python wrapper.

Arrays in, arrays out: it knows nothing of strategies, files, SQLite, MCP or widgets. Running a
strategy through it is `qlm_kernel.strategy.run`; `BacktestResult` wraps what the kernel returns.
The names below load on first use, so importing `qlm_kernel.engine.settings` (every front end's
settings check) does not import pandas, Numba or the kernels.
"""

from __future__ import annotations

from qlm_kernel.lazy import Exports, lazy_getattr

_EXPORTS: Exports = {
    "SETTING_NAMES": ("qlm_kernel.engine.settings", "SETTING_NAMES"),
    "BacktestSettings": ("qlm_kernel.engine.settings", "BacktestSettings"),
    "BacktestResult": ("qlm_kernel.engine.result", "BacktestResult"),
    "as_ohlcv_frame": ("qlm_kernel.engine.api", "as_ohlcv_frame"),
    "price_arrays": ("qlm_kernel.engine.api", "price_arrays"),
    "simulate": ("qlm_kernel.engine.api", "simulate"),
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
