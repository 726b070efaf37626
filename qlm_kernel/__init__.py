"""QLM (QuantLogic): a Jupyter-native research environment for systematic trading.

The public surface is DESIGN.md's contract (see docs/reference/ and README "Quickstart"): data
(``load_ohlcv``, ``validate_ohlcv``, ``sample_data``, ``DataManager``, ``check_memory``), strategies
(``Strategy``, ``Param``, ``Signals``, ``load_strategy``, ``indicators``), ``backtest``, ``optimize`` (with
``optimize.cancel|status|list|resume``), ``sanity``, ``heal``, paper trading (``paper_replay``,
``paper_trade``, ``ExecutionHandler``, ``PaperExecutionHandler``), ``subscribe`` to the event bus,
``RunSpec`` and the ``QLMError`` family. Everything else is imported from its module. Names are bound
on first use so ``import qlm_kernel`` stays fast.
"""

from __future__ import annotations

import importlib
import warnings
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

_PUBLIC: dict[str, str] = {
    "load_ohlcv": "qlm_kernel.data",
    "validate_ohlcv": "qlm_kernel.data",
    "sample_data": "qlm_kernel.data",
    "DataManager": "qlm_kernel.data",
    "check_memory": "qlm_kernel.data",
    "load_universe": "qlm_kernel.data",
    "Strategy": "qlm_kernel.strategy",
    "Param": "qlm_kernel.strategy",
    "Signals": "qlm_kernel.strategy",
    "load_strategy": "qlm_kernel.strategy",
    "backtest": "qlm_kernel.session",
    "download": "qlm_kernel.session",
    "backtest_portfolio": "qlm_kernel.session",
    "PortfolioResult": "qlm_kernel.engine.portfolio_result",
    "TargetWeights": "qlm_kernel.strategy.weights",
    "Sleeve": "qlm_kernel.strategy.sleeves",
    "Universe": "qlm_kernel.data.universe",
    "BacktestResult": "qlm_kernel.engine",
    "RunSpec": "qlm_kernel.session",
    "optimize": "qlm_kernel.session",
    "reproduce": "qlm_kernel.session",
    "OptimizationResult": "qlm_kernel.optimization",
    "heal": "qlm_kernel.session",
    "HealReport": "qlm_kernel.healing",
    "paper_trade": "qlm_kernel.execution",
    "paper_replay": "qlm_kernel.execution",
    "PaperExecutionHandler": "qlm_kernel.execution",
    "ExecutionHandler": "qlm_kernel.execution",
    "subscribe": "qlm_kernel.events",
}
_SUBMODULES = {"indicators", "sanity", "widgets", "mcp", "session", "engine", "data", "strategy", "execution",
               "events", "store", "errors"}
_MOVED: dict[str, str] = {  # deprecated top-level names -> the module to import them from
    "resolve_data": "qlm_kernel.workspace",
    "data_manager": "qlm_kernel.workspace",
    "fingerprint_frame": "qlm_kernel.data",
    "Store": "qlm_kernel.store",
    "default_store": "qlm_kernel.store",
    "get_bus": "qlm_kernel.events",
    "publish": "qlm_kernel.events",
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
    *_PUBLIC,
    *sorted(_SUBMODULES),
]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"qlm_kernel.{name}")
    elif name in _MOVED:
        warnings.warn(f"qlm_kernel.{name} is deprecated; use `from {_MOVED[name]} import {name}`",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    else:
        raise AttributeError(f"module 'qlm_kernel' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
