"""The process-wide default bus that engine, jobs, heal, MCP and widgets share, created on first use.

A forked child gets a fresh bus on its next use: the parent's dispatcher threads do not survive fork.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from qlm_kernel.events.event import Event
from qlm_kernel.events.pubsub import Bus
from qlm_kernel.events.subscription import Subscription

_default: Bus | None = None
_lock = threading.Lock()


def get_bus() -> Bus:
    """The default `Bus` (also ``qlm_kernel.events.bus``), created the first time it is asked for."""
    global _default
    bus = _default
    if bus is None:
        with _lock:
            if _default is None:
                _default = Bus()
            bus = _default
    return bus


def publish(topic: str, payload: Mapping[str, Any] | None = None, *, source: str | None = None) -> Event:
    """`Bus.publish` on the default bus."""
    return get_bus().publish(topic, payload, source=source)


def subscribe(pattern: str, target: Callable[[Event], Any] | Any, *, maxsize: int = 1000,
              name: str | None = None) -> Subscription:
    """`Bus.subscribe` on the default bus."""
    return get_bus().subscribe(pattern, target, maxsize=maxsize, name=name)


def _forget_after_fork() -> None:
    global _default, _lock
    _default = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
