"""A fork server: one warmed process per pool that forks the pool's worker processes in milliseconds.

Why: a worker started from scratch pays about a second of CPU before its first call (Python, numpy,
pandas, Numba's target set-up, loading the engine's compiled kernels). The fork server pays that once,
then forks a ready worker per request, so a replacement after a TIMEOUT kill is ready at once instead of
a second later, and a pool fills without a burst of imports on every core.

Trust boundary, unchanged from a spawned worker: the fork server itself is started like a worker (a
scrubbed environment, its parent's death kills it), holds no secret and never runs user code; each
forked worker starts a new session, asks Linux to kill it when the fork server dies (which dies with the
kernel), closes the fork server's descriptors and reseeds NumPy's global generator, then caps its own
address space and serves calls exactly as a spawned worker does (`qlm_kernel.isolation.worker.serve`).
The fork server is single-threaded (forking a threaded process is unsafe) and reaps its children,
telling the kernel each exit status; the kernel holds a pidfd per worker, so a kill can never hit a
recycled pid. Assumptions: Linux 5.3+ (``pidfd_open``); elsewhere, or if the fork server cannot start,
the pool spawns each worker as its own process (`qlm_kernel.isolation.pool`).

Protocol (``SOCK_SEQPACKET``, one JSON object per message): kernel → server ``{"op": "fork",
"memory_bytes": N}`` with the worker's socket end attached; server → kernel ``{"op": "forked",
"pid": P}`` with a pidfd attached, or ``{"op": "error", "message": ...}``; and at any time
``{"op": "exited", "pid": P, "returncode": R}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

MAX_MESSAGE = 65536
ENTRY = "from qlm_kernel.isolation.forkserver import main; main()"
"""The server's command (``python -c ENTRY FD PARENT_PID``; not ``-m``: the package imports this module)."""
ENV_START_METHOD = "QLM_WORKER_START"
"""``fork`` (default: workers forked by a warmed fork server) or ``spawn`` (each worker its own
Python process, about a second of start-up each)."""


def supported() -> bool:
    """True where workers can be forked from a fork server (Linux with pidfds) and not turned off."""
    if os.environ.get(ENV_START_METHOD, "fork").strip().lower() == "spawn":
        return False
    return sys.platform.startswith("linux") and hasattr(os, "pidfd_open") and hasattr(signal,
                                                                                       "pidfd_send_signal")


def _send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def _receive(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """One message and its descriptors; (None, []) when the other end closed."""
    data, fds, _flags, _address = socket.recv_fds(sock, MAX_MESSAGE, 4)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data), list(fds)


# --- the kernel's side ----------------------------------------------------------------------------


class ForkedProcess:
    """A worker forked by the fork server: the part of `subprocess.Popen` the pool uses (``pid``,
    ``poll``, ``wait``, ``kill``, ``returncode``), backed by a pidfd and the server's exit reports."""

    def __init__(self, server: ForkServer, pid: int, pidfd: int) -> None:
        self.server = server
        self.pid = pid
        self._pidfd: int | None = pidfd
        self.returncode: int | None = None

    def _ended(self) -> bool:
        """True once the process has terminated (its pidfd turns readable)."""
        if self._pidfd is None:
            return True
        readable = selectors.DefaultSelector()
        try:
            readable.register(self._pidfd, selectors.EVENT_READ)
            return bool(readable.select(0))
        finally:
            readable.close()

    def poll(self) -> int | None:
        """The exit status once the process has ended and been reaped (negative: killed by a signal)."""
        if self.returncode is None:
            code = self.server.exit_status(self.pid)
            if code is None and not self.server.running() and self._ended():
                code = -signal.SIGKILL  # the fork server died: its workers were killed with it
            if code is not None:
                self.returncode = code
                self._close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
            self.server.wait_for_exit(0.05)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self._pidfd is not None and self.returncode is None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _close(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = None

    def __del__(self) -> None:
        self._close()


class ForkServer:
    """The kernel's handle on one fork server process: `fork` a worker, learn exit statuses."""

    def __init__(self, popen: Any, control: socket.socket) -> None:
        self.process = popen
        self._control = control
        self._request_lock = threading.Lock()
        self._cond = threading.Condition()
        self._exits: dict[int, int] = {}
        self._replies: list[tuple[dict[str, Any], list[int]]] = []
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="qlm-forkserver-reader", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, spawn: Any, env: dict[str, str], timeout: float) -> ForkServer:
        """Start a fork server through ``spawn(make)`` (the pool's long-lived spawner thread, so the
        server's parent-death signal is tied to a thread that lives as long as the kernel) and wait
        until it is warm. Raises ``OSError`` or ``RuntimeError`` when it cannot start."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            popen = spawn(lambda: subprocess.Popen(
                [sys.executable, "-c", ENTRY, str(theirs.fileno()), str(os.getpid())],
                env=env, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                start_new_session=True))
        finally:
            theirs.close()
        ours.settimeout(timeout)
        try:
            ready, stray = _receive(ours)
            for fd in stray:
                os.close(fd)
        except (OSError, ValueError) as exc:
            popen.kill()
            popen.wait()
            ours.close()
            raise RuntimeError(f"the fork server did not start: {exc}") from exc
        if not ready or ready.get("op") != "ready":
            popen.kill()
            popen.wait()
            ours.close()
            raise RuntimeError(f"the fork server did not start (exit code {popen.poll()})")
        ours.settimeout(None)
        return cls(popen, ours)

    def running(self) -> bool:
        return not self._closed and self.process.poll() is None

    def fork(self, worker_end: socket.socket, memory_bytes: int | None, timeout: float) -> ForkedProcess:
        """A new worker serving ``worker_end`` (its memory budget in bytes, None for none)."""
        with self._request_lock:
            if not self.running():
                raise RuntimeError("the fork server is not running")
            _send(self._control, {"op": "fork", "memory_bytes": memory_bytes}, [worker_end.fileno()])
            deadline = time.monotonic() + timeout
            with self._cond:
                while not self._replies:
                    left = deadline - time.monotonic()
                    if self._closed or left <= 0:
                        raise RuntimeError("the fork server did not answer a fork request")
                    self._cond.wait(min(left, 0.5))
                reply, fds = self._replies.pop(0)
        if reply.get("op") != "forked" or not fds:
            for fd in fds:
                os.close(fd)
            raise RuntimeError(f"the fork server could not fork: {reply.get('message', reply)}")
        for extra in fds[1:]:
            os.close(extra)
        return ForkedProcess(self, int(reply["pid"]), fds[0])

    def exit_status(self, pid: int) -> int | None:
        with self._cond:
            return self._exits.pop(pid, None)

    def wait_for_exit(self, timeout: float) -> None:
        with self._cond:
            self._cond.wait(timeout)

    def _read(self) -> None:
        while True:
            try:
                message, fds = _receive(self._control)
            except (OSError, ValueError):
                message, fds = None, []
            with self._cond:
                if message is None:
                    self._closed = True
                elif message.get("op") == "exited":
                    self._exits[int(message["pid"])] = int(message["returncode"])
                else:
                    if message.get("op") == "forked":  # a recycled pid: an old exit is not this one's
                        self._exits.pop(int(message["pid"]), None)
                    self._replies.append((message, fds))
                self._cond.notify_all()
            if message is None:
                return

    def close(self) -> None:
        """Stop the fork server (its workers die with it: their parent-death signal)."""
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5.0)
        with contextlib.suppress(OSError):
            self._control.shutdown(socket.SHUT_RDWR)
        self._reader.join(5.0)
        with contextlib.suppress(OSError):
            self._control.close()


# --- the fork server's side -----------------------------------------------------------------------


def _child(control: socket.socket, selector: selectors.BaseSelector, wakeup: tuple[int, int], fd: int,
           memory_bytes: int | None, server_pid: int) -> None:
    """In a freshly forked worker: drop the server's state, then serve calls; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        selector.close()
        for end in wakeup:
            os.close(end)
        control.close()
        os.setsid()  # a terminal's Ctrl-C is for the kernel; workers are killed by it
        from multiprocessing.connection import Connection

        from qlm_kernel.isolation import worker

        worker.die_with_parent(server_pid)
        if memory_bytes:
            os.environ["QLM_WORKER_MEMORY_BYTES"] = str(int(memory_bytes))
        else:
            os.environ.pop("QLM_WORKER_MEMORY_BYTES", None)
        import numpy as np

        np.random.seed()  # the legacy global generator: fresh entropy per worker, as a new process has
        conn = Connection(fd)
        try:
            worker.serve(conn)
        finally:
            conn.close()
        code = 0
    except (BrokenPipeError, ConnectionResetError, EOFError):  # the kernel let go of this worker
        code = 0
    except BaseException:  # a worker must never fall back into the server's loop
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _reap(control: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        with contextlib.suppress(OSError):
            _send(control, {"op": "exited", "pid": pid, "returncode": os.waitstatus_to_exitcode(status)})


def serve_forks(control: socket.socket) -> None:
    """Warm up, say ready, then fork a worker per request until the kernel closes the connection."""
    from qlm_kernel.isolation.worker import _warm

    _warm()
    server_pid = os.getpid()
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    _send(control, {"op": "ready", "pid": server_pid})
    while True:
        for key, _mask in selector.select():
            if key.fileobj is not control:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_read, 4096)
                continue
            try:
                request, fds = _receive(control)
            except InterruptedError:
                continue
            if request is None:
                return
            if request.get("op") != "fork" or len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                _send(control, {"op": "error", "message": f"not a fork request: {request}"})
                continue
            try:
                pid = os.fork()
            except OSError as exc:
                os.close(fds[0])
                _send(control, {"op": "error", "message": str(exc)})
                continue
            if pid == 0:
                _child(control, selector, (wake_read, wake_write), fds[0], request.get("memory_bytes"),
                       server_pid)
            os.close(fds[0])
            pidfd = os.pidfd_open(pid)  # before reaping, so it is this child's and no recycled pid's
            try:
                _send(control, {"op": "forked", "pid": pid}, [pidfd])
            finally:
                os.close(pidfd)
        _reap(control)


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -c ENTRY FD PARENT_PID``."""
    args = sys.argv[1:] if argv is None else argv
    from qlm_kernel.isolation.worker import die_with_parent

    die_with_parent(int(args[1]) if len(args) > 1 else None)
    control = socket.socket(fileno=int(args[0]))
    try:
        serve_forks(control)
    finally:
        control.close()

