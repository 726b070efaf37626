"""`compute_signals`: run a strategy's ``signals(data)`` with every failure turned into a traced error.

Whatever user code raises becomes ``StrategyError(code="STRATEGY_RUNTIME")`` carrying the user's
file/line/excerpt plus the strategy name, parameters and a summary of the data; a wrong return
value, or signals of the wrong shape, length or dtype, is ``BAD_SIGNALS`` (located at the line that
built the `Signals`); a ``signals()`` that overruns the time limit in force is ``TIMEOUT``. The
engine, the optimizer and the heal loop all go through here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from qlm_kernel.errors import StrategyError
from qlm_kernel.strategy.base import Strategy
from qlm_kernel.strategy.loader import resolve_strategy
from qlm_kernel.strategy.signals import SIGNAL_FIELDS, Signals
from qlm_kernel.strategy.timelimit import TimeLimitExceeded, check_limit, current_limit, run_limited
from qlm_kernel.strategy.trace import excerpt, same_file, source_lines, user_error


def compute_signals(
    strategy: Any, data: Any, *, validate: bool = True, time_limit: float | None = None
) -> Signals:
    """``strategy.signals(data)``, checked.

    ``strategy``: anything `resolve_strategy` accepts. With ``validate`` (default) and a
    DataFrame/Series ``data``, the signal and stop arrays are checked against the data's length and
    index now, so the error names the strategy (cheap: no copies for bool arrays). ``time_limit``
    (seconds; default: the enclosing `time_limit_scope`, else none) stops a ``signals()`` that runs
    too long with ``StrategyError(code="TIMEOUT")`` naming the line it was on (see `timelimit`).
    """
    strat = strategy if isinstance(strategy, Strategy) else resolve_strategy(strategy)
    limit = check_limit(time_limit) if time_limit is not None else current_limit()
    try:
        result = run_limited(lambda: strat.signals(data), limit)
    except TimeLimitExceeded as exc:
        raise _timeout_error(strat, data, exc) from None
    except (Exception, SystemExit) as exc:  # KeyboardInterrupt still stops the run
        raise _runtime_error(strat, data, exc) from exc
    if not isinstance(result, Signals):
        raise _bad_return(strat, data, result)
    if validate and isinstance(data, (pd.DataFrame, pd.Series)):
        try:
            result.to_arrays(len(data), data.index)
            result.stop_arrays(len(data), data.index)
        except StrategyError as err:
            _locate_bad_signals(err, strat, data)
            raise
    return result


def _locate_bad_signals(err: StrategyError, strat: Strategy, data: Any) -> None:
    """Add what the heal loop needs to a BAD_SIGNALS error: strategy, params, data, source excerpt."""
    cls = type(strat)
    err.context.update(_strategy_context(strat))
    err.context.setdefault("file", cls.source_file)
    err.context.setdefault("data", describe_data(data))
    file, line = err.context.get("file"), err.context.get("line")
    if file and line and "excerpt" not in err.context:
        lines = source_lines(file, cls.source_text if same_file(file, cls.source_file) else None)
        err.context["excerpt"] = excerpt(lines, line)
        if 0 < line <= len(lines):
            err.context["source_line"] = lines[line - 1].strip()


def _strategy_context(strat: Strategy) -> dict[str, Any]:
    cls = type(strat)
    return {
        "strategy": cls.name,
        "strategy_class": cls.__name__,
        "strategy_file": cls.source_file,
        "source_hash": cls.source_hash,
        "params": strat.params,
    }


def describe_data(data: Any) -> dict[str, Any]:
    """A small JSON-safe summary of the data a strategy saw: kind, rows, columns, dtypes, span."""
    info: dict[str, Any] = {"kind": type(data).__name__}
    if isinstance(data, (pd.DataFrame, pd.Series)):
        info["rows"] = len(data)
        if isinstance(data, pd.DataFrame):
            info["columns"] = [str(c) for c in data.columns]
            info["dtypes"] = {str(c): str(t) for c, t in data.dtypes.items()}
        else:
            info["name"] = str(data.name)
            info["dtype"] = str(data.dtype)
        info["index"] = type(data.index).__name__
        if len(data):
            info["start"] = str(data.index[0])
            info["end"] = str(data.index[-1])
    elif hasattr(data, "shape"):
        info["shape"] = [int(s) for s in data.shape]
        info["dtype"] = str(getattr(data, "dtype", ""))
    return info


def _user_files(cls: type[Strategy]) -> list[str | None]:
    code = getattr(cls.signals, "__code__", None)
    return [code.co_filename if code is not None else None, cls.source_file]


def _sources(cls: type[Strategy]) -> dict[str, str]:
    return {cls.source_file: cls.source_text} if cls.source_file and cls.source_text else {}


def _runtime_error(strat: Strategy, data: Any, exc: BaseException) -> StrategyError:
    cls = type(strat)
    return user_error(
        exc,
        message=f"strategy {cls.name} failed in signals()",
        code="STRATEGY_RUNTIME",
        user_files=_user_files(cls),
        sources=_sources(cls),
        hint_data=data,
        data=describe_data(data),
        **_strategy_context(strat),
    )


def _timeout_error(strat: Strategy, data: Any, exc: TimeLimitExceeded) -> StrategyError:
    cls = type(strat)
    what = ("signals() was stopped" if exc.interrupted else
            "signals() ran past its time limit and could not be interrupted (compiled code holding the "
            "interpreter, or code that swallows the interruption): in a QLM worker process the worker is "
            "killed; elsewhere its thread keeps running (use isolate=True)")
    err = user_error(
        TimeoutError(str(exc)),
        message=f"strategy {cls.name}: {what}",
        code="TIMEOUT",
        user_files=_user_files(cls),
        sources=_sources(cls),
        frames=exc.frames,
        hint="",
        data=describe_data(data),
        time_limit_s=exc.seconds,
        interrupted=exc.interrupted,
        **_strategy_context(strat),
    )
    where = f"line {err.context['line']}" if err.context.get("line") else "signals()"
    err.hint = (f"signals() was still running at {where} after {exc.seconds:g} s: look for a loop that never "
                "ends (a `while` whose condition never changes) or replace the Python loop with numpy/pandas "
                "(Numba-compiled loops cannot be interrupted)")
    return err


def _bad_return(strat: Strategy, data: Any, result: Any) -> StrategyError:
    cls = type(strat)
    code = getattr(cls.signals, "__code__", None)
    kind = type(result).__name__
    if result is None:
        hint = "signals() returned nothing: end it with `return Signals(entry_long=..., exit_long=...)`"
    elif isinstance(result, dict):
        keys = [k for k in result if k in SIGNAL_FIELDS]
        hint = "wrap the dict: `return Signals(**signals)`" if keys else "return Signals(entry_long=...)"
    elif isinstance(result, tuple):
        hint = "return Signals(entry_long=..., exit_long=...) instead of a tuple"
    else:
        hint = f"wrap it: `return Signals(entry_long=...)` (got a {kind})"
    return StrategyError(
        f"{cls.name}.signals() returned {kind}, expected Signals",
        hint=hint,
        code="BAD_SIGNALS",
        file=code.co_filename if code is not None else cls.source_file,
        line=code.co_firstlineno if code is not None else None,
        returned_type=kind,
        data=describe_data(data),
        **_strategy_context(strat),
    )
