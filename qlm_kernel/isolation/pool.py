"""`WorkerPool`: a small set of persistent worker processes that run code the notebook user did not write.

Why processes and not threads: a thread running an endless Numba loop (or any C call) cannot be stopped,
only abandoned, and it keeps a core busy for good; a process can always be killed. So a call sent to the
pool has a hard time limit: past it the worker is killed (SIGKILL) and the call answers
``StrategyError(code="TIMEOUT")`` within the limit plus the poll interval; the pool starts a replacement
in the background. A worker that dies by itself (segfault, out-of-memory kill) answers
``QLMSystemError(code="WORKER_DIED")``; a cancelled call kills its worker at once. The pool never
queues: when every worker is busy a call is refused at once with ``QLMSystemError(code="BUSY")``.

Workers are started lazily, forked from a warmed fork server (`qlm_kernel.isolation.forkserver`; one
per worker environment, shared by the process's pools: `qlm_kernel.isolation.forkservers`): the first
call pays about a second of imports once, every later worker, replacements included, a few milliseconds
(``QLM_WORKER_START=spawn`` starts each as its own process instead). Workers get a scrubbed environment
(`qlm_kernel.isolation.environment`), an address-space cap of the memory budget
(`qlm_kernel.data.memory.memory_budget`), stdout sent to /dev/null (a stdio MCP server's stdout is the
protocol) and ``PR_SET_PDEATHSIG`` so none outlives the kernel. The worker's bus events are republished
on this process's bus, so widgets, the sidebar and the store see them as if the work ran here.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from qlm_kernel.errors import QLMError, QLMSystemError, StrategyError
from qlm_kernel.isolation import forkserver as _forkserver
from qlm_kernel.isolation.environment import qlm_settings, scrubbed_environment
from qlm_kernel.isolation.forkserver import ForkServer
from qlm_kernel.isolation.forkservers import ForkServers

ARM_MARGIN_S = 0.5
"""A limited run of user code (``arm`` from the worker) is killed this long after its own limit: the
worker interrupts a Python loop itself at the limit; what holds the GIL (a Numba loop) is killed."""
POLL_S = 0.05
"""How often a waiting call checks its deadline, its cancel flag and its worker's life."""
STARTUP_TIMEOUT_S = 120.0
KILL_WAIT_S = 5.0
ENV_WORKERS = "QLM_WORKERS"

LostHook = Callable[[int, str], None]
_COUNTERS = {"timeout": "timeouts", "cancelled": "cancelled", "died": "died"}
"""Called with (pid, reason) after a worker was killed or died mid-call: "timeout" | "cancelled" | "died"."""


class _Spawner:
    """One long-lived thread that creates every worker process.

    Linux sends ``PR_SET_PDEATHSIG`` when the *thread* that forked the child ends, not the process, so
    workers must not be forked from short-lived threads (a server's request threads come and go).
    """

    def __init__(self) -> None:
        self._requests: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, make: Callable[[], Any]) -> Any:
        """``make()`` on the spawner thread; its result (or exception)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="qlm-worker-spawner", daemon=True)
                self._thread.start()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._requests.put((make, future))
        return future.result()

    def _serve(self) -> None:
        while True:
            make, future = self._requests.get()
            try:
                future.set_result(make())
            except BaseException as exc:
                future.set_exception(exc)


_spawner = _Spawner()
_fork_servers = ForkServers()
"""The fork servers this process's pools share (one per worker environment)."""


class Worker:
    """One worker process and this process's end of its connection."""

    def __init__(self, memory_bytes: int | None = None, forkserver: ForkServer | None = None) -> None:
        """Fork it from ``forkserver`` (milliseconds), or without one spawn a new Python process."""
        ours, theirs = socket.socketpair()
        try:
            if forkserver is not None:
                self.process: Any = forkserver.fork(theirs, memory_bytes, STARTUP_TIMEOUT_S)
            else:
                env = scrubbed_environment()
                if memory_bytes:
                    env["QLM_WORKER_MEMORY_BYTES"] = str(int(memory_bytes))
                self.process = _spawner.run(lambda: subprocess.Popen(
                    [sys.executable, "-m", "qlm_kernel.isolation.worker", str(theirs.fileno()),
                     str(os.getpid())],
                    env=env,
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    start_new_session=True,  # a terminal's Ctrl-C is for the kernel; workers are killed by us
                ))
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.pid = self.process.pid
        self.forked = forkserver is not None
        self.info: dict[str, Any] = {}
        self.calls = 0
        self.target: str | None = None
        self.since = time.time()

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Block until the worker has warmed up; `QLMSystemError` WORKER_START_FAILED otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.conn.poll(POLL_S):
                try:
                    kind, body = self.conn.recv()
                except (EOFError, OSError):
                    break
                if kind == "ready":
                    self.info = dict(body)
                    return
            elif self.process.poll() is not None:
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(1.0 if time.monotonic() < deadline else 0.0)
        code = self.process.poll()
        self.kill()
        raise QLMSystemError(
            "a worker process could not start" + (f" (exit code {code})" if code is not None else
                                                  f" within {timeout:g} s"),
            code="WORKER_START_FAILED",
            hint="check the kernel's log (stderr) for the worker's error; the QLM install may be broken",
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the process (Numba loops included) and reap it."""
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL does not wait for the process
            self.process.wait(KILL_WAIT_S)
        self.conn.close()

    def describe(self, state: str) -> dict[str, Any]:
        return {"pid": self.pid, "state": state, "calls": self.calls, "target": self.target,
                "since": self.since, "startup_s": self.info.get("startup_s"),
                "started_by": "fork" if self.forked else "spawn"}


def death_reason(returncode: int | None) -> str:
    """Human words for a worker's exit status."""
    if returncode is None:
        return "its connection closed"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        why = {"SIGKILL": " (the system may have killed it for memory)",
               "SIGSEGV": " (a crash in compiled code)"}
        return f"it was killed by {name}{why.get(name, '')}"
    return f"it exited with code {returncode}"


class WorkerPool:
    """Up to ``size`` worker processes; `call` runs ``module:function(**kwargs)`` in one of them."""

    def __init__(self, size: int | None = None, *, memory_bytes: Callable[[], int | None] | None = None,
                 on_lost: LostHook | None = None, on_killing: LostHook | None = None) -> None:
        self.size = max(1, int(size or os.environ.get(ENV_WORKERS) or os.cpu_count() or 1))
        self._memory_bytes = memory_bytes
        self.on_lost = on_lost
        self.on_killing = on_killing
        self._cond = threading.Condition()
        self._idle: list[Worker] = []
        self._busy: dict[int, Worker] = {}
        self._starting = 0
        self._waiting = 0
        self._closed = False
        self.counters = {"calls": 0, "timeouts": 0, "cancelled": 0, "died": 0, "busy_refusals": 0,
                         "retired_dirty": 0, "spawned": 0}
        self.last_start_error: dict[str, Any] | None = None
        self._forkserver: ForkServer | None = None
        self._forkserver_lock = threading.Lock()
        self.forkserver_error: str | None = None

    # --- workers -------------------------------------------------------------------------------

    def _fork_server(self) -> ForkServer | None:
        """The warmed fork server this pool shares with the process's other pools of the same worker
        environment (`qlm_kernel.isolation.forkservers`; started on first use, again if it died); None
        where workers cannot be forked (`qlm_kernel.isolation.forkserver.supported`) or it failed to
        start, and then workers are spawned one by one."""
        if not _forkserver.supported():
            return None
        with self._forkserver_lock:
            if self._closed:
                return None
            if self._forkserver is not None and self._forkserver.running():
                return self._forkserver
            if self._forkserver is not None:
                _fork_servers.release(id(self), self._forkserver)
                self._forkserver = None
            try:
                self._forkserver = _fork_servers.acquire(id(self), scrubbed_environment(), _spawner.run,
                                                         STARTUP_TIMEOUT_S)
            except (OSError, RuntimeError) as exc:
                self.forkserver_error = str(exc)
                print(f"qlm: worker fork server unavailable, spawning workers instead: {exc}",
                      file=sys.stderr)
                return None
            self.forkserver_error = None
            return self._forkserver

    def _spawn(self) -> Worker:
        budget = self._memory_bytes() if self._memory_bytes else None
        server = self._fork_server()
        try:
            worker = Worker(budget, server)
        except (OSError, RuntimeError) as exc:  # the fork server died meanwhile: spawn this one
            if server is None:
                raise
            self.forkserver_error = str(exc)
            worker = Worker(budget)
        worker.wait_ready()
        with self._cond:
            self.counters["spawned"] += 1
        return worker

    def _start_in_background(self) -> None:
        """Start one worker off the caller's path (a replacement, or warming the pool)."""

        def start() -> None:
            try:
                worker = self._spawn()
            except QLMError as err:
                with self._cond:
                    self._starting -= 1
                    self.last_start_error = err.to_dict()
                    self._cond.notify_all()
                return
            with self._cond:
                self._starting -= 1
                if self._closed:
                    worker.kill()
                else:
                    self._idle.append(worker)
                self._cond.notify_all()

        threading.Thread(target=start, name="qlm-worker-start", daemon=True).start()

    def _reserve(self, more: int) -> int:
        """Under the lock: count up to ``more`` further workers as starting, never past ``size``; how many
        (the caller starts them)."""
        if self._closed:
            return 0
        n = max(min(more, self.size - (len(self._busy) + len(self._idle) + self._starting)), 0)
        self._starting += n
        return n

    def warm(self, count: int | None = None) -> None:
        """Start workers in the background until ``count`` (default: all) exist (idle, busy or starting)."""
        with self._cond:
            have = len(self._busy) + len(self._idle) + self._starting
            missing = self._reserve((self.size if count is None else int(count)) - have)
        for _ in range(missing):
            self._start_in_background()

    def _acquire(self) -> Worker:
        with self._cond:
            if self._closed:
                raise QLMSystemError("the worker pool is shut down", code="POOL_CLOSED",
                                     hint="restart the kernel or the MCP server")
            while True:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        self._busy[worker.pid] = worker
                        return worker
                    worker.kill()
                total = len(self._busy) + self._starting
                if total < self.size:
                    self._starting += 1
                    break
                if self._starting > self._waiting:  # a worker is warming up and nobody else waits for it
                    self._waiting += 1
                    try:
                        self._cond.wait(STARTUP_TIMEOUT_S)
                    finally:
                        self._waiting -= 1
                    continue
                self.counters["busy_refusals"] += 1
                raise QLMSystemError(
                    f"all {self.size} QLM worker processes are busy",
                    code="BUSY",
                    hint=(f"wait for a running call to finish (or cancel it) and try again; the number of "
                          f"workers is the server option {ENV_WORKERS} (environment of the process that "
                          "starts the kernel or `qlm mcp`), default: the number of cores"),
                    workers=self.size,
                )
        try:
            worker = self._spawn()
        except BaseException:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            self._starting -= 1
            self._busy[worker.pid] = worker
            missing = self._reserve(1)  # warm one more: the next concurrent call pays no start-up
        for _ in range(missing):
            self._start_in_background()
        return worker

    def _release(self, worker: Worker) -> None:
        with self._cond:
            self._busy.pop(worker.pid, None)
            worker.target = None
            if self._closed:
                worker.kill()
            else:
                self._idle.append(worker)
            self._cond.notify_all()

    def _discard(self, worker: Worker, reason: str | None) -> None:
        """Kill ``worker`` and start a replacement. ``reason`` (a call cut short: "timeout", "cancelled",
        "died") is counted and told to `on_killing` before the kill and to `on_lost` after it; None
        (retiring a dirty worker after its call answered) is neither."""
        if reason is not None:
            self._count(_COUNTERS[reason])
            if self.on_killing is not None:
                with contextlib.suppress(Exception):
                    self.on_killing(worker.pid, reason)
        worker.kill()
        with self._cond:
            self._busy.pop(worker.pid, None)
            missing = self._reserve(1)  # its replacement
            self._cond.notify_all()
        if reason is not None and self.on_lost is not None:
            with contextlib.suppress(Exception):
                self.on_lost(worker.pid, reason)
        for _ in range(missing):
            self._start_in_background()

    # --- calls -----------------------------------------------------------------------------------

    def call(
        self,
        target: str,
        kwargs: dict[str, Any] | None = None,
        *,
        time_limit: float,
        progress: Callable[[dict[str, Any]], Any] | None = None,
        cancel: threading.Event | None = None,
        what: str = "the strategy's code",
        stall: bool = False,
        started: Callable[[int], Any] | None = None,
        reported_limit: float | None = None,
    ) -> Any:
        """Run ``target`` ("qlm_kernel.module:function") with ``kwargs`` in a worker; its return value.

        ``time_limit`` (seconds, from when the worker receives the call) is enforced by killing the
        worker; with ``stall=True`` it is the longest wait between two progress payloads instead (a
        long-running session that must keep moving). ``progress`` receives the payloads the function
        passes to its own ``progress`` argument (given only when this is set). Setting ``cancel``
        kills the worker at once. ``started(pid)`` is called once the worker has the call.
        ``reported_limit``: the limit a TIMEOUT names, when the caller's own is shorter than the kill
        deadline (which adds a margin for the worker to report a Python loop's line itself).
        """
        from qlm_kernel.events import publish

        worker = self._acquire()
        worker.target = target
        worker.calls += 1
        with self._cond:
            self.counters["calls"] += 1
        body = {"target": target, "kwargs": kwargs or {}, "settings": qlm_settings(), "cwd": os.getcwd(),
                "progress": progress is not None}
        try:
            worker.conn.send(("call", body))
            if started is not None:
                started(worker.pid)
            call_limit = (time.monotonic() + float(time_limit), reported_limit or float(time_limit))
            armed: dict[int, tuple[float, float]] = {}  # limited runs in progress: id -> (kill at, limit)
            while True:
                if cancel is not None and cancel.is_set():
                    self._discard(worker, "cancelled")
                    name = target.rpartition(":")[2]
                    raise QLMError(f"{name} was cancelled; its worker process was stopped",
                                   code="CANCELLED", hint="run it again when needed")
                kill_at, limit = min([call_limit, *armed.values()])  # the nearest deadline, and its limit
                remaining = kill_at - time.monotonic()
                if remaining <= 0:
                    self._discard(worker, "timeout")
                    # past a limited run's own limit plus the margin: the worker's interrupt did not end it
                    raise timeout_error(limit, what, uninterruptible=kill_at < call_limit[0])
                if not worker.conn.poll(min(remaining, POLL_S)):
                    if not worker.alive():
                        raise self._died(worker)
                    continue
                try:
                    kind, message = worker.conn.recv()
                except (EOFError, OSError):
                    raise self._died(worker) from None
                if kind == "arm":
                    armed[message["id"]] = (time.monotonic() + message["seconds"] + ARM_MARGIN_S,
                                            message["seconds"])
                elif kind == "disarm":
                    armed.pop(message["id"], None)
                elif kind == "event":
                    publish(message["topic"], message.get("payload") or {}, source=message.get("source"))
                elif kind == "progress":
                    if stall:
                        call_limit = (time.monotonic() + float(time_limit), call_limit[1])
                    if progress is not None:
                        progress(message)
                elif kind in ("result", "error"):
                    if message.get("dirty"):
                        self._count("retired_dirty")
                        self._discard(worker, None)
                    else:
                        self._release(worker)
                    if kind == "error":
                        raise QLMError.from_dict(message["record"])
                    return message["value"]
        except BaseException:
            with self._cond:
                still_ours = self._busy.get(worker.pid) is worker
            if still_ours:  # interrupted while waiting (KeyboardInterrupt, a failing progress callback)
                self._discard(worker, "cancelled")
            raise

    def _died(self, worker: Worker) -> QLMSystemError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(KILL_WAIT_S)
        reason = death_reason(worker.process.poll())
        self._discard(worker, "died")
        return QLMSystemError(
            f"the worker process running this call died: {reason}",
            code="WORKER_DIED",
            hint="the kernel and the server are fine; a strategy that crashes compiled code or uses too "
                 "much memory does this: fix it, use less data, and run again",
            pid=worker.pid,
            returncode=worker.process.poll(),
        )

    def _count(self, name: str) -> None:
        with self._cond:
            self.counters[name] += 1

    # --- state -----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Size, workers (pid, state, calls, what each runs) and counters; cheap, never blocks on work."""
        with self._cond:
            workers = [w.describe("busy") for w in self._busy.values()]
            workers += [w.describe("idle") for w in self._idle]
            server = self._forkserver
            return {"size": self.size, "busy": len(self._busy), "idle": len(self._idle),
                    "starting": self._starting, "workers": workers, **self.counters,
                    "last_start_error": self.last_start_error,
                    "forkserver": {"pid": server.process.pid if server is not None else None,
                                   "running": server is not None and server.running(),
                                   "error": self.forkserver_error}}

    def shutdown(self) -> None:
        """Kill every worker (busy ones too); later calls are refused."""
        with self._cond:
            self._closed = True
            workers = [*self._idle, *self._busy.values()]
            self._idle.clear()
        for worker in workers:
            worker.kill()
        with self._forkserver_lock:
            server, self._forkserver = self._forkserver, None
        if server is not None:
            _fork_servers.release(id(self), server)  # stopped when no other pool uses it


def timeout_error(seconds: float, what: str = "the strategy's code", *,
                  uninterruptible: bool = False) -> StrategyError:
    """The TIMEOUT answer of a call whose worker was killed at its time limit; ``uninterruptible``: a
    limited run of user code that the worker's own interrupt at its limit did not end (``interrupted``
    False in the context, as when the worker reports that itself)."""
    cause = (" and could not be interrupted (compiled code holding the interpreter, or code that swallows "
             "the interruption)" if uninterruptible else "")
    extra = {"interrupted": False} if uninterruptible else {}
    return StrategyError(
        f"{what} ran longer than the time limit of {seconds:g} s{cause}; the worker process running it "
        "was stopped (killed), so nothing of it is left running",
        code="TIMEOUT",
        hint="look for a loop that never ends in signals() or at the top of the file; vectorize slow "
             "loops, use less data, or pass a larger time_limit",
        time_limit=seconds,
        **extra,
    )


_pools: dict[str, WorkerPool] = {}
_pools_lock = threading.Lock()


def default_pool(on_lost: LostHook | None = None, *, name: str = "strategy", size: int | None = None,
                 on_killing: LostHook | None = None) -> WorkerPool:
    """This process's pool called ``name`` (created on first use; the hooks and ``size`` count then only).

    ``strategy`` (the default) serves short calls and is sized by `ENV_WORKERS` or the cores; other
    names (``paper``: one long call per paper session) are separate so that long sessions never take
    the workers of short calls.
    """
    with _pools_lock:
        pool = _pools.get(name)
        if pool is None:
            from qlm_kernel.data.memory import memory_budget

            pool = WorkerPool(size, memory_bytes=lambda: int(memory_budget()["budget"] or 0) or None,
                              on_lost=on_lost, on_killing=on_killing)
            _pools[name] = pool
        return pool


def existing_pool(name: str = "strategy") -> WorkerPool | None:
    """The pool called ``name`` if one was started in this process (status readers must not start one)."""
    return _pools.get(name)


def shutdown_default_pool() -> None:
    """Kill every pool's workers (at exit; tests that switch settings)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown()


def _forget_after_fork() -> None:
    global _pools_lock, _fork_servers
    _pools.clear()
    _pools_lock = threading.Lock()
    _fork_servers = ForkServers()  # the parent's servers are the parent's


atexit.register(shutdown_default_pool)
os.register_at_fork(after_in_child=_forget_after_fork)
