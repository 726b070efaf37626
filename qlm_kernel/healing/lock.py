"""One heal per strategy at a time: a lock file per strategy in the workspace, held for the whole heal.

``<QLM_HOME>/locks/heal-<strategy>.lock`` is locked with ``flock`` (exclusive, non-blocking) on its own
open file, so a second heal of the same strategy — another thread of this process or another process
— is refused at once with `StrategyError` ``HEAL_IN_PROGRESS`` naming the holder's pid, host and start
time (written into the file by the holder). The operating system drops the lock when the holder's
process dies, however it dies, so a free lock with a ``running`` heal session means that heal was
interrupted (see `qlm_kernel.healing.recovery`). The key is the strategy's store name (the file's stem),
the same key its versions use.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qlm_kernel.errors import QLMSystemError, StrategyError
from qlm_kernel.home import PathLike, workspace_dir

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_SAFE = re.compile(r"[A-Za-z0-9_]{1,64}")


def lock_path(strategy: str, home: PathLike | None = None) -> Path:
    """The lock file of ``strategy`` (created folder ``<home>/locks``; the name is hashed if unusual)."""
    stem = strategy if _SAFE.fullmatch(strategy) else "x" + hashlib.sha256(strategy.encode()).hexdigest()[:16]
    return workspace_dir("locks", home) / f"heal-{stem}.lock"


def process_start(pid: int) -> str | None:
    """An identity for the process ``pid`` beyond its number (Linux: its start time in clock ticks),
    so a reused pid is not mistaken for the original process; None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError):
        return None


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


def owner_info() -> dict[str, Any]:
    """This process as the owner of a heal: pid, host, start identity, since (UTC ISO time)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "process_start": process_start(os.getpid()),
            "since": datetime.now(UTC).isoformat(timespec="seconds")}


def owner_alive(owner: dict[str, Any] | None) -> bool | None:
    """Whether the recorded owner process still runs: True/False on this host, None when unknown (no
    record, or another host). A zombie (killed, not yet reaped) counts as dead."""
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return None
    if owner.get("host") != socket.gethostname():
        return None
    pid = owner["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return None
    if _state(pid) in ("Z", "X"):
        return False
    started = owner.get("process_start")
    return not (started is not None and process_start(pid) not in (None, started))


class HealLock:
    """The exclusive lock of one strategy's heals; `acquire` never waits."""

    def __init__(self, strategy: str, *, home: PathLike | None = None) -> None:
        self.strategy = strategy
        self.path = lock_path(strategy, home)
        self._fd: int | None = None
        self._mutex = threading.Lock()

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock if it is free (True) and write this process into the file; False if taken."""
        with self._mutex:
            if self._fd is not None:
                return True
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as exc:
                raise QLMSystemError(f"cannot open the heal lock {self.path}: {exc}", code="LOCK_FAILED",
                                     path=str(self.path),
                                     hint="check the workspace folder's permissions") from exc
            try:
                taken = _try_lock(fd)
            except OSError as exc:  # e.g. ENOLCK: locks not supported on this file system
                os.close(fd)
                raise QLMSystemError(f"cannot lock {self.path}: {exc}", code="LOCK_FAILED",
                                     path=str(self.path),
                                     hint="keep QLM_HOME on a local file system that supports flock") from exc
            if not taken:
                os.close(fd)
                return False
            self._fd = fd
            self.describe(None)  # the heal names its session once it has one
            return True

    def describe(self, session_id: str | None) -> None:
        """Write the holder's record (pid, host, since, strategy, session) into the lock file."""
        if self._fd is None:
            return
        record = {**owner_info(), "strategy": self.strategy, "session_id": session_id}
        data = json.dumps(record).encode()
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
        except OSError:  # the record is informative only; the lock itself is held
            pass

    def release(self) -> None:
        """Clear the holder's record and drop the lock (idempotent)."""
        with self._mutex:
            fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            _unlock(fd)
            os.close(fd)


def holder(strategy: str, home: PathLike | None = None) -> dict[str, Any] | None:
    """The record the current holder wrote into the lock file (None if none could be read)."""
    try:
        text = lock_path(strategy, home).read_text(encoding="utf-8")
        record = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def in_progress_error(strategy: str, home: PathLike | None = None) -> StrategyError:
    """`StrategyError` ``HEAL_IN_PROGRESS`` naming who holds the lock of ``strategy``."""
    info = holder(strategy, home) or {}
    pid = info.get("pid")
    who = f"process {pid}" + (f" on {info['host']}" if info.get("host") else "") if pid else "another process"
    since = f" since {info['since']}" if info.get("since") else ""
    return StrategyError(
        f"strategy {strategy!r} is already being healed by {who}{since}",
        code="HEAL_IN_PROGRESS",
        strategy=strategy,
        holder_pid=pid,
        holder_host=info.get("host"),
        holder_session_id=info.get("session_id"),
        since=info.get("since"),
        lock_file=str(lock_path(strategy, home)),
        hint="wait for that heal to finish (its steps are on the bus and in the store), or stop it"
        + (f" (pid {pid})" if pid else "") + "; a heal whose process died frees the lock by itself",
    )


@contextmanager
def heal_lock(strategy: str, *, home: PathLike | None = None) -> Iterator[HealLock]:
    """Hold the heal lock of ``strategy`` for the block; `StrategyError` ``HEAL_IN_PROGRESS`` if taken."""
    lock = HealLock(strategy, home=home)
    if not lock.acquire():
        raise in_progress_error(strategy, home)
    try:
        yield lock
    finally:
        lock.release()


def _try_lock(fd: int) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt  # pragma: no cover - Windows

    try:  # pragma: no cover - Windows
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError:  # pragma: no cover - Windows
        return False
    return True  # pragma: no cover - Windows


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return
    if sys.platform == "win32":  # pragma: no cover - Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
