"""``isolate=True`` for the notebook: `qlm.backtest` / `qlm.optimize` in a worker process on request.

The notebook path stays in the kernel by default (no start-up, no copies). Asking for isolation runs
the same call in a worker of `qlm_kernel.session.workers` under a time limit: for code one does not
trust yet (an assistant's file), or a loop that may not end. The strategy must be something a worker
can load by itself — a strategy file's path or name (a class defined in the notebook lives only in
the kernel); data is sent as is (a frame is pickled) or named (``dataset=``, ``sample=``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qlm_kernel.errors import ConfigError

DEFAULT_ISOLATED_TIME_LIMIT = 600.0
"""Seconds an isolated notebook call may run unless ``time_limit=`` says otherwise."""


def sendable_strategy(strategy: Any) -> str:
    """``strategy`` as a worker can load it (a file path or name), or a ConfigError saying why not."""
    import os

    if isinstance(strategy, (str, os.PathLike)):
        return os.fspath(strategy)
    raise ConfigError(
        f"isolate=True needs a strategy file (its path or name), not a {type(strategy).__name__}",
        hint="save the strategy in a .py file (qlm.strategies.write_strategy or the workspace strategies "
             "folder) and pass its name; a class defined in the notebook exists only in this kernel",
        code="NOT_ISOLATABLE",
    )


def run_in_worker(target: str, strategy: Any, kwargs: dict[str, Any], time_limit: float | None,
                  progress: Callable[[dict[str, Any]], Any] | None = None) -> Any:
    """``target(strategy, **kwargs)`` in a worker, killed after ``time_limit`` s (TIMEOUT)."""
    from qlm_kernel.session.workers import run_isolated

    arguments = {"strategy": sendable_strategy(strategy), **kwargs}
    return run_isolated(target, arguments, time_limit=float(time_limit or DEFAULT_ISOLATED_TIME_LIMIT),
                        progress=progress)
