"""A worker process's main loop: ``python -m qlm_kernel.isolation.worker FD``.

The parent (`qlm_kernel.isolation.pool`) starts it with a scrubbed environment and one end of a socket
pair as file descriptor FD. The worker caps its address space, warms the engine, says ``ready``, then
serves calls one at a time: ``("call", {target: "module:function", kwargs, settings, cwd, progress})``
is answered by ``("result", {...})`` or ``("error", {...})``; meanwhile its bus events and progress
payloads stream to the parent, which republishes and records them (a worker never writes events to
the store itself). Killing the process is how a call is stopped: nothing here needs to cooperate.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import resource
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from qlm_kernel.errors import QLMError, QLMSystemError, StrategyError
from qlm_kernel.strategy.timelimit import TimeLimitExceeded

_stop = threading.Event()


def stop_requested() -> threading.Event:
    """Set when the parent asks the running call to stop cooperatively (SIGUSR1, e.g. a paper
    session's stop); cleared before every call. Code that cannot stop is killed instead."""
    return _stop


def _on_stop_signal(signum: int, frame: Any) -> None:
    _stop.set()


WORKER_NICENESS = 5
INTERRUPT_GRACE_S = 0.2
"""An interrupted user-code thread that has not stopped after this is left behind: the worker is then
"dirty" and retired (killed) once its call has answered."""

USER_CODE_THREAD = "qlm-user-code"
"""Name of the threads `qlm_kernel.strategy.timelimit` runs user code in: one still alive after a call
means an interrupted loop that never returned to the interpreter (a "dirty" worker, retired)."""


def limit_address_space(budget: int) -> int:
    """Cap this process's address space at what it maps now plus ``budget`` bytes; returns the cap."""
    import psutil

    mapped = psutil.Process().memory_info().vms
    cap = int(mapped + max(budget, 0))
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    return cap


def _warm() -> None:
    """Import the session layer and load the engine's compiled kernels (from Numba's disk cache)."""
    import numpy as np

    importlib.import_module("qlm_kernel.session")  # every call target lives at or above it
    from qlm_kernel.data.samples import sample_data
    from qlm_kernel.strategy import Signals
    from qlm_kernel.strategy.run import backtest

    frame = sample_data("synthetic", n=3, seed=0)
    backtest(Signals(entry_long=np.zeros(len(frame), dtype=bool)), frame)


class _Forwarder:
    """A bus target that sends every event to the parent (called in the publisher's thread)."""

    def __init__(self, send: Any) -> None:
        self._send = send

    def put_nowait(self, event: Any) -> None:
        with contextlib.suppress(OSError, ValueError):  # parent gone: the worker is about to be killed
            self._send(("event", event.to_dict()))


def _target(path: str) -> Any:
    module, _, name = path.partition(":")
    if not module.startswith("qlm_kernel.") or not name:
        raise QLMSystemError(f"not a QLM call target: {path!r}", code="BAD_TARGET",
                             hint="targets are 'qlm_kernel.module:function'")
    return getattr(importlib.import_module(module), name)


def _apply_settings(settings: dict[str, str], cwd: str | None) -> None:
    for name in [n for n in os.environ if n.startswith("QLM_") and n != "QLM_WORKER"]:
        if name not in settings:
            del os.environ[name]
    os.environ.update(settings)
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)


def _dirty() -> bool:
    return any(t.name == USER_CODE_THREAD and t.is_alive() for t in threading.enumerate())


def _as_error(exc: BaseException) -> QLMError:
    if isinstance(exc, QLMError):
        return exc
    if isinstance(exc, MemoryError):
        return QLMSystemError(
            "the worker ran out of its memory allowance (address-space limit)",
            code="MEMORY_LIMIT",
            hint="use less data or fewer trials, or free memory on this machine",
        )
    if isinstance(exc, TimeLimitExceeded):  # an interrupted user-code limit that escaped its handler
        return StrategyError(str(exc), code="TIMEOUT", hint="make signals() finish sooner")
    err = QLMSystemError(f"{type(exc).__name__}: {exc}", code="INTERNAL",
                         hint="this is a bug in QLM; the worker goes on")
    import traceback

    err.traceback = "".join(traceback.format_exception(exc))
    return err


def serve(conn: Connection) -> None:
    """Answer calls until the parent closes the connection."""
    lock = threading.Lock()

    def send(message: tuple[str, Any]) -> None:
        with lock:
            conn.send(message)

    started = time.perf_counter()
    signal.signal(signal.SIGUSR1, _on_stop_signal)
    os.nice(WORKER_NICENESS)  # the kernel (the notebook, the server answering status) goes first
    from qlm_kernel.strategy.timelimit import set_interrupt_grace, watch_limits

    set_interrupt_grace(INTERRUPT_GRACE_S)
    runs = itertools.count(1)

    def limited_run_started(seconds: float) -> int:
        token = next(runs)
        send(("arm", {"id": token, "seconds": float(seconds)}))
        return token

    watch_limits(limited_run_started, lambda token: send(("disarm", {"id": token})))
    budget = int(os.environ.get("QLM_WORKER_MEMORY_BYTES", "0") or 0)
    cap = limit_address_space(budget) if budget > 0 else None
    _warm()
    from qlm_kernel.events import get_bus

    get_bus().subscribe("*", _Forwarder(send), name="worker-forwarder", maxsize=10_000)
    send(("ready", {"pid": os.getpid(), "startup_s": time.perf_counter() - started,
                    "address_space_cap": cap}))
    while True:
        try:
            kind, body = conn.recv()
        except (EOFError, OSError):
            return
        if kind != "call":
            return
        _stop.clear()
        _apply_settings(body.get("settings") or {}, body.get("cwd"))
        kwargs = dict(body.get("kwargs") or {})
        if body.get("progress"):
            kwargs["progress"] = lambda payload: send(("progress", dict(payload)))
        try:
            value = _target(body["target"])(**kwargs)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                send(("error", {"record": _as_error(RuntimeError(repr(exc))).to_dict(), "dirty": True}))
                return
            send(("error", {"record": _as_error(exc).to_dict(), "dirty": _dirty()}))
            continue
        try:
            send(("result", {"value": value, "dirty": _dirty()}))
        except Exception as exc:
            send(("error", {"record": _as_error(exc).to_dict(), "dirty": _dirty()}))


def die_with_parent(parent_pid: int | None) -> None:
    """Ask Linux to SIGKILL this process when its parent (the kernel, pid ``parent_pid``) dies, even
    mid-loop; exit at once when it has died already (we were re-parented before the request took
    effect). The parent's pid is compared, not 1: a kernel or ``qlm mcp`` may itself be pid 1 (a
    container's main process), and an orphan is re-parented to a subreaper, not always to pid 1."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def main(argv: list[str] | None = None) -> None:
    """Entry point: serve the parent over the socket whose descriptor is the first argument (the
    second is the parent's pid)."""
    args = sys.argv[1:] if argv is None else argv
    die_with_parent(int(args[1]) if len(args) > 1 else None)
    conn = Connection(int(args[0]))
    try:
        serve(conn)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
