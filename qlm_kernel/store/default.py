"""`default_store()`: one process-wide Store for the current QLM_HOME, re-created when that changes."""

from __future__ import annotations

import os
import threading

from qlm_kernel.store.base import default_path
from qlm_kernel.store.core import Store

_lock = threading.Lock()
_current: Store | None = None
_current_pid: int | None = None


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at fork time


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def default_store() -> Store:
    """The shared Store for ``<QLM_HOME>/qlm.db``.

    A new one is opened when QLM_HOME points elsewhere (the previous default store is closed), after
    `close()`, and in a forked child.
    """
    global _current, _current_pid
    path = default_path().resolve()
    with _lock:
        store = _current
        if store is not None and not store.closed and store.path == path and _current_pid == os.getpid():
            return store
        if store is not None and _current_pid == os.getpid():
            store.close()
        _current = None
        _current = Store(path)
        _current_pid = os.getpid()
        return _current


def close_default_store() -> None:
    """Close the shared Store, if any (tests, shutdown); the next `default_store()` opens a new one."""
    global _current
    with _lock:
        if _current is not None and _current_pid == os.getpid():
            _current.close()
        _current = None
