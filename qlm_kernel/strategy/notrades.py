"""Explain a backtest that ran but never traded: a warning-level diagnosis, not an exception.

The usual cause is an indicator that is NaN on every bar (a division by zero, a window longer than
the data, a misspelled-but-existing column), so every comparison with it is False. `diagnose_no_trades`
re-runs ``signals()`` once with a profile hook that captures its local variables on return, reports
the float locals that are (almost) all NaN with the line that assigned them, and counts the True
values of each signal. The result is a `StrategyError` (``code="NO_TRADES"``, ``severity="warning"``)
so it serializes and reads exactly like a failure's trace.

The re-run is strategy code like any other: under the time limit in force it can overrun (raised as
``StrategyError(code="TIMEOUT")``) or fail where the first run did not (``STRATEGY_RUNTIME``), exactly
as `compute_signals` reports them; other ``BaseException`` classes (``KeyboardInterrupt``) pass through.
"""

from __future__ import annotations

import ast
import sys
from types import FrameType
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.errors import StrategyError
from qlm_kernel.strategy.base import Strategy
from qlm_kernel.strategy.compute import _runtime_error, _timeout_error
from qlm_kernel.strategy.signals import SIGNAL_FIELDS, Signals
from qlm_kernel.strategy.timelimit import TimeLimitExceeded, current_limit, run_limited
from qlm_kernel.strategy.trace import excerpt, source_lines

NAN_SHARE = 0.99
"""A local counts as an all-NaN indicator when at least this share of its values is NaN."""


def diagnose_no_trades(strat: Strategy, data: pd.DataFrame) -> StrategyError:
    """A warning-level `StrategyError` saying why ``strat`` produced no trades on ``data`` (raises the
    re-run's own `StrategyError`, ``TIMEOUT`` or ``STRATEGY_RUNTIME``, when it fails)."""
    cls = type(strat)
    try:
        signals, local_vars = run_limited(lambda: _capture(strat, data), current_limit())
    except TimeLimitExceeded as exc:
        raise _timeout_error(strat, data, exc) from None
    except (Exception, SystemExit) as exc:
        raise _runtime_error(strat, data, exc) from exc
    counts = _signal_counts(signals, len(data))
    text = cls.source_text or ("\n".join(source_lines(cls.source_file)) if cls.source_file else "")
    lines = text.splitlines()
    assigned = _assignment_lines(text, getattr(cls.signals, "__code__", None))
    nan_locals = [
        {"name": name, "line": assigned.get(name), "nan_share": share, "dtype": dtype}
        for name, (share, dtype) in _nan_locals(local_vars).items()
    ]
    origin = signals.origin if isinstance(signals, Signals) else None
    line = next((n["line"] for n in nan_locals if n["line"]), None) or (origin[1] if origin else None)
    causes = ["no entry signal is ever True"] if counts and not any(
        counts.get(f) for f in ("entry_long", "entry_short")) else []
    causes += [f"indicator {n['name']!r}" + (f" (line {n['line']})" if n["line"] else "") + " is all NaN"
               for n in nan_locals]
    if nan_locals:
        hint = (f"{nan_locals[0]['name']!r} is NaN on every bar, so every comparison with it is False: check "
                "for a division by zero (x - x, a zero volume), a window longer than the data or a wrong "
                "column, and handle NaN (e.g. .fillna() or np.where)")
    else:
        hint = "the entry conditions never hold on this data: loosen them or check the indicator logic"
    return StrategyError(
        f"strategy {cls.name} made no trades: {'; '.join(causes) or 'no entry ever filled'}",
        hint=hint,
        code="NO_TRADES",
        severity="warning",
        file=cls.source_file,
        line=line,
        excerpt=excerpt(lines, line),
        source_line=lines[line - 1].strip() if line and 0 < line <= len(lines) else None,
        exception_type="NoTrades",
        exception="no trades: " + ("; ".join(causes) or "no entry ever filled"),
        signal_counts=counts,
        nan_locals=nan_locals,
        strategy=cls.name,
        strategy_class=cls.__name__,
        strategy_file=cls.source_file,
        params=strat.params,
    )


def _capture(strat: Strategy, data: pd.DataFrame) -> tuple[Any, dict[str, Any]]:
    """``strat.signals(data)`` plus the locals of that call at its return (via a profile hook)."""
    code = getattr(type(strat).signals, "__code__", None)
    seen: dict[str, Any] = {}

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if event == "return" and frame.f_code is code:
            seen.update(frame.f_locals)

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        result = strat.signals(data)
    finally:
        sys.setprofile(previous)
    return result, seen


def _signal_counts(signals: Any, n: int) -> dict[str, int | None]:
    if not isinstance(signals, Signals):
        return {}
    out: dict[str, int | None] = {}
    for field in SIGNAL_FIELDS:
        value = getattr(signals, field)
        try:
            out[field] = int(np.count_nonzero(np.asarray(value, dtype=bool))) if value is not None else 0
        except (TypeError, ValueError):
            out[field] = None
    return out


def _nan_locals(local_vars: dict[str, Any]) -> dict[str, tuple[float, str]]:
    found: dict[str, tuple[float, str]] = {}
    for name, value in local_vars.items():
        if name in ("self", "data") or not isinstance(value, (pd.Series, np.ndarray)):
            continue
        arr = value.to_numpy() if isinstance(value, pd.Series) else value
        if arr.dtype.kind != "f" or arr.size == 0:
            continue
        share = float(np.isnan(arr).mean())
        if share >= NAN_SHARE:
            found[name] = (round(share, 4), str(arr.dtype))
    return found


def _assignment_lines(text: str, code: Any) -> dict[str, int]:
    """Name -> first line assigning it inside the function whose code object is ``code``."""
    if code is None or not text:
        return {}
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    func = next((node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                 and node.name == code.co_name and node.lineno <= code.co_firstlineno <= node.end_lineno
                 ), None)
    if func is None:
        return {}
    lines: dict[str, int] = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            lines[node.id] = min(lines.get(node.id, node.lineno), node.lineno)
    return lines
