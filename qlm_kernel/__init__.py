"""QLM (QuantLogic): a Jupyter-native research environment for systematic trading.

The public surface (see README): ``load_ohlcv``, ``sample_data``, ``DataManager``, ``backtest``,
``Strategy``, ``Param``, ``Signals``, ``indicators``, the store (``default_store``), the event bus
(``publish``, ``subscribe``) and the ``QLMError`` family. Submodules are
imported on first use so ``import qlm_kernel`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from qlm_kernel.errors import (
    ConfigError,
    DataError,
    ExecutionError,
    OptimizationError,
    QLMError,
    QLMSystemError,
    SecurityError,
    StrategyError,
)

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "load_ohlcv": "qlm_kernel.data",
    "sample_data": "qlm_kernel.data",
    "DataManager": "qlm_kernel.data",
    "check_memory": "qlm_kernel.data",
    "backtest": "qlm_kernel.session",
    "optimize": "qlm_kernel.optimize",
    "OptimizationResult": "qlm_kernel.optimize",
    "data_manager": "qlm_kernel.session",
    "resolve_data": "qlm_kernel.session",
    "Store": "qlm_kernel.store",
    "default_store": "qlm_kernel.store",
    "get_bus": "qlm_kernel.events",
    "publish": "qlm_kernel.events",
    "subscribe": "qlm_kernel.events",
    "validate_ohlcv": "qlm_kernel.data",
    "fingerprint_frame": "qlm_kernel.data",
    "BacktestResult": "qlm_kernel.engine",
    "Strategy": "qlm_kernel.strategy",
    "Param": "qlm_kernel.strategy",
    "Signals": "qlm_kernel.strategy",
    "load_strategy": "qlm_kernel.strategy",
    "heal": "qlm_kernel.heal",
    "HealReport": "qlm_kernel.heal",
    "paper_trade": "qlm_kernel.execution",
    "paper_replay": "qlm_kernel.execution",
    "PaperExecutionHandler": "qlm_kernel.execution",
    "ExecutionHandler": "qlm_kernel.execution",
}
_SUBMODULES = {
    "indicators",
    "engine",
    "data",
    "strategy",
    "errors",
    "workspace",
    "events",
    "store",
    "session",
    "sanity",
    "heal",
    "execution",
    "widgets",
}

__all__ = [
    "ConfigError",
    "DataError",
    "ExecutionError",
    "OptimizationError",
    "QLMError",
    "QLMSystemError",
    "SecurityError",
    "StrategyError",
    *_LAZY,
    *sorted(_SUBMODULES),
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"qlm_kernel.{name}")
    else:
        raise AttributeError(f"module 'qlm_kernel' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
