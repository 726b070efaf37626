"""What a heal does with each exception: a recorded, structured error, or (a real Ctrl-C) propagation.

The rule, precisely:

- **The user's interrupt propagates** (after the file is rolled back and the session stored): a
  ``KeyboardInterrupt`` raised on the thread that called `heal` — a Ctrl-C / Jupyter "interrupt
  kernel" lands there, also while the heal waits for strategy code or for the model callable. So does
  a `HealControl` (the heal machinery's own flow control, e.g. the dry run's request for a reply).
- **Everything else becomes data**: an exception raised by strategy code in its time-limited worker
  thread (``signals()``, file loading, the no-trade re-run) — any class, including
  ``KeyboardInterrupt``, ``SystemExit``, `TimeLimitExceeded` and other ``BaseException`` subclasses —
  is a `StrategyError` (``TIMEOUT`` for an overrun, ``STRATEGY_ERROR`` otherwise, located at the
  strategy's line) recorded on the run step; an error of the heal machinery or the environment is its
  `QLMError` (or ``INTERNAL`` for a bug), ends the heal with status "error" and a rollback.

Without a time limit (``time_limit=None``) strategy code runs inline on the caller's thread, so a
``KeyboardInterrupt`` it raises cannot be told from Ctrl-C and is treated as the user's interrupt.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from qlm_kernel.errors import QLMError, QLMSystemError, StrategyError
from qlm_kernel.strategy import timelimit
from qlm_kernel.strategy.timelimit import TimeLimitExceeded
from qlm_kernel.strategy.trace import same_file, user_error


class HealControl(BaseException):
    """Flow control of the heal machinery itself (never recorded as an error: it always propagates)."""


def from_user_code_thread(exc: BaseException) -> bool:
    """Whether ``exc`` was raised in the time-limited worker thread that runs strategy code (its
    traceback passes through `timelimit`'s ``work`` function)."""
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "work" and code.co_filename == timelimit.__file__:
            return True
        tb = tb.tb_next
    return False


def propagates(exc: BaseException) -> bool:
    """Whether a heal must re-raise ``exc`` (after rolling back): the user's interrupt, or flow control."""
    if isinstance(exc, HealControl):
        return True
    return isinstance(exc, KeyboardInterrupt) and not from_user_code_thread(exc)


def _in_file(exc: BaseException, path: Path) -> bool:
    return any(same_file(f.filename, str(path)) for f in traceback.extract_tb(exc.__traceback__))


def strategy_failure(exc: BaseException, path: Path, **context: Any) -> StrategyError | None:
    """The `StrategyError` for an exception that strategy code (the file at ``path``) raised outside the
    usual wrapping, or None when it is not the strategy's (the user's interrupt, a library bug)."""
    if propagates(exc):
        return None
    if isinstance(exc, TimeLimitExceeded):
        err = user_error(TimeoutError(str(exc)), message=f"{path.name}: user code was stopped",
                         code="TIMEOUT", user_files=[str(path)], frames=exc.frames, hint="",
                         time_limit_s=exc.seconds, interrupted=exc.interrupted, **context)
        where = f"line {err.context['line']}" if err.context.get("line") else "the strategy"
        err.hint = (f"the code was still running at {where} after {exc.seconds:g} s: look for a loop that "
                    "never ends or work that grows with the data")
        return err
    if not (from_user_code_thread(exc) or _in_file(exc, path)):
        return None
    kind = type(exc).__name__
    hint = None if isinstance(exc, Exception) else (
        f"strategy code must not raise {kind}: return Signals, or raise an ordinary exception with a message")
    return user_error(exc, message=f"{path.name} raised {kind}", code="STRATEGY_ERROR",
                      user_files=[str(path)], hint=hint, **context)


def as_error(exc: BaseException, path: Path | None = None) -> QLMError:
    """Any exception as a `QLMError`: itself, the strategy's `StrategyError`, else `QLMSystemError`
    ``INTERNAL`` (``MEMORY`` for a MemoryError) with the traceback."""
    if isinstance(exc, QLMError):
        return exc
    if path is not None:
        found = strategy_failure(exc, path)
        if found is not None:
            return found
    kind = type(exc).__name__
    if isinstance(exc, MemoryError):
        err = QLMSystemError(f"out of memory during the heal: {exc}", code="MEMORY",
                             hint="use less data, or free memory on this machine", exception_type=kind)
    else:
        err = QLMSystemError(f"{kind}: {exc}" if str(exc) else kind, code="INTERNAL", exception_type=kind,
                             hint="an unexpected error in QLM's heal machinery; the file was restored. "
                             "Please report it with this traceback")
    err.traceback = "".join(traceback.format_exception(exc))
    return err
