"""The backtest engine: Numba kernels over (bars x columns) arrays and their thin Python wrapper.

Arrays in, arrays out: it knows nothing of strategies, files, SQLite, MCP or widgets. Running a
strategy through it is `qlm_kernel.strategy.run`; `BacktestResult` wraps what the kernel returns.
The names below load on first use, so importing `qlm_kernel.engine.settings` (every front end's
settings check) does not import pandas, Numba or the kernels.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SETTING_NAMES": "qlm_kernel.engine.settings",
    "BacktestSettings": "qlm_kernel.engine.settings",
    "BacktestResult": "qlm_kernel.engine.result",
    "as_ohlcv_frame": "qlm_kernel.engine.api",
    "price_arrays": "qlm_kernel.engine.api",
    "simulate": "qlm_kernel.engine.api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'qlm_kernel.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
