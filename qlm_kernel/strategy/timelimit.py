"""A wall-clock limit for user strategy code: run it in a worker thread, interrupt it when it overruns.

``run_limited(fn, seconds)`` calls ``fn()`` in a worker thread (with the caller's context variables)
and waits. On overrun it snapshots the worker's stack (``sys._current_frames``), then raises
`TimeLimitExceeded` *inside* the worker with ``PyThreadState_SetAsyncExc`` (Python checks for it
between bytecodes, so ``while True: ...`` loops stop) and raises `TimeLimitExceeded` in the caller
with the worker's frames (the line the loop was on). Code that never returns to the interpreter —
a Numba-compiled loop, a long C call, ``time.sleep`` — cannot be interrupted: the caller still gets
the error on time and the worker (a daemon thread) is abandoned.

The limit is opt-in per scope: ``with time_limit_scope(10): ...`` makes every `compute_signals` and
strategy-file load in that thread use it; without a scope user code runs inline at no extra cost.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from qlm_kernel.errors import ConfigError

T = TypeVar("T")
_LIMIT: contextvars.ContextVar[float | None] = contextvars.ContextVar("qlm_time_limit", default=None)
_GRACE_S = 1.0  # how long the worker gets to unwind after the interrupt before it is abandoned


class TimeLimitExceeded(BaseException):
    """User code ran past its time limit; ``frames`` are the worker's frames at that moment.

    A BaseException so that ``except Exception`` in user code cannot swallow the interruption; it
    is raised into the worker with no arguments (the interpreter instantiates it), hence defaults.
    """

    def __init__(self, seconds: float = 0.0, frames: list[traceback.FrameSummary] | None = None) -> None:
        super().__init__(f"user code ran longer than the time limit of {seconds:g} s")
        self.seconds = seconds
        self.frames = frames or []
        self.interrupted = False  # True when the worker actually stopped


def check_limit(seconds: Any) -> float | None:
    """``seconds`` as a positive float, or None for "no limit"; `ConfigError` otherwise."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ConfigError("a time limit is a number of seconds > 0 (or None for none)",
                          hint="e.g. time_limit=10.0", code="BAD_TIME_LIMIT", value=repr(seconds))
    return float(seconds)


def current_limit() -> float | None:
    """The time limit of the enclosing `time_limit_scope`, or None."""
    return _LIMIT.get()


@contextlib.contextmanager
def time_limit_scope(seconds: float | None) -> Iterator[None]:
    """Within this block, strategy code (``signals()`` and file loading) runs under ``seconds``."""
    token = _LIMIT.set(check_limit(seconds))
    try:
        yield
    finally:
        _LIMIT.reset(token)


LimitWatcher = tuple[Callable[[float], Any], Callable[[Any], Any]]
_watcher: LimitWatcher | None = None


def watch_limits(started: Callable[[float], Any], ended: Callable[[Any], Any]) -> None:
    """Report every limited run: ``token = started(seconds)`` before it, ``ended(token)`` after. A QLM
    worker process tells its parent, which kills the process if a run outlives its limit — the only
    way to stop code that never returns to the interpreter (a Numba loop holding the GIL)."""
    global _watcher
    _watcher = (started, ended)


def run_limited(fn: Callable[[], T], seconds: float | None) -> T:
    """``fn()``, or `TimeLimitExceeded` after ``seconds`` (None: run inline, no thread)."""
    if seconds is None:
        return fn()
    watcher = _watcher
    token = watcher[0](seconds) if watcher is not None else None
    try:
        return _run_in_thread(fn, seconds)
    finally:
        if watcher is not None:
            watcher[1](token)


def _run_in_thread(fn: Callable[[], T], seconds: float) -> T:
    box: dict[str, Any] = {}
    context = contextvars.copy_context()
    context.run(_LIMIT.set, None)  # nested calls inside the worker run inline

    def work() -> None:
        try:
            box["value"] = context.run(fn)
        except BaseException as exc:  # handed to the caller, re-raised there
            box["error"] = exc

    worker = threading.Thread(target=work, name="qlm-user-code", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise _interrupt(worker, seconds, box)
    if "error" in box:
        raise box["error"]
    return box["value"]


def _interrupt(worker: threading.Thread, seconds: float, box: dict[str, Any]) -> TimeLimitExceeded:
    frame = sys._current_frames().get(worker.ident or -1)
    frames = traceback.extract_stack(frame) if frame is not None else []
    del frame
    _async_raise(worker.ident, TimeLimitExceeded)
    worker.join(_GRACE_S)
    err = TimeLimitExceeded(seconds, frames)
    caught = box.get("error")
    if not worker.is_alive() and isinstance(caught, TimeLimitExceeded):
        err.interrupted = True
        err.frames = traceback.extract_tb(caught.__traceback__) or frames
    elif not worker.is_alive():
        err.interrupted = True
    return err


def set_interrupt_grace(seconds: float) -> None:
    """How long an interrupted worker thread gets to unwind before it is abandoned (default 1 s). A QLM
    worker process uses less: an abandoned thread there is ended by killing the whole process."""
    global _GRACE_S
    _GRACE_S = float(seconds)


def _async_raise(ident: int | None, exc_type: type[BaseException]) -> None:
    """Ask the interpreter to raise ``exc_type`` in thread ``ident`` at its next bytecode."""
    if ident is None:
        return
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc_type))
    if done > 1:  # more than one thread state touched: undo, never leave a stray exception around
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
