"""The strategy layer: `Strategy` + `Param` declare a strategy, `Signals` carry its output.

``load_strategy`` reads a strategy file afresh, ``resolve_strategy`` turns a class, instance, path,
name or ready-made `Signals` into an instance, and ``compute_signals`` runs it with every failure
reported as a located, JSON-safe `StrategyError` (the trace the self-healing loop reads);
``time_limit_scope`` bounds how long user code may run and ``diagnose_no_trades`` explains a run
that never traded (e.g. an all-NaN indicator).
"""

from __future__ import annotations

from qlm_kernel.strategy.base import SignalsStrategy, Strategy
from qlm_kernel.strategy.compute import compute_signals, describe_data
from qlm_kernel.strategy.loader import (
    available_strategies,
    examples_dir,
    find_strategy_file,
    load_strategy,
    resolve_strategy,
    strategy_dirs,
    user_strategies_dir,
)
from qlm_kernel.strategy.notrades import diagnose_no_trades
from qlm_kernel.strategy.params import Param
from qlm_kernel.strategy.signals import SIGNAL_FIELDS, STOP_FIELDS, Signals
from qlm_kernel.strategy.timelimit import time_limit_scope

__all__ = [
    "SIGNAL_FIELDS",
    "STOP_FIELDS",
    "Param",
    "Signals",
    "SignalsStrategy",
    "Strategy",
    "available_strategies",
    "compute_signals",
    "describe_data",
    "diagnose_no_trades",
    "examples_dir",
    "find_strategy_file",
    "load_strategy",
    "resolve_strategy",
    "strategy_dirs",
    "time_limit_scope",
    "user_strategies_dir",
]
