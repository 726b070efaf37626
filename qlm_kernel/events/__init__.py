"""QLM's event bus: the spine through which engine, jobs, heal, MCP, store and widgets talk.

Producers ``publish(topic, payload)``; consumers ``subscribe(pattern, fn_or_queue)``. Nothing polls,
and a slow or failing subscriber never blocks or breaks a publisher. ``qlm_kernel.events.bus`` is the
process-wide default `Bus` (created on first use); ``topics`` lists the topics and their meanings.
"""

from __future__ import annotations

from typing import Any

from qlm_kernel.events import topics
from qlm_kernel.events.default import get_bus, publish, subscribe
from qlm_kernel.events.event import Event, json_safe
from qlm_kernel.events.persist import EventRecorder
from qlm_kernel.events.pubsub import Bus
from qlm_kernel.events.subscription import CallbackSubscription, QueueSubscription, Subscription
from qlm_kernel.events.throttling import Throttled, throttle
from qlm_kernel.events.topics import TOPICS, matches, validate_topic

__all__ = [
    "TOPICS",
    "Bus",
    "CallbackSubscription",
    "Event",
    "EventRecorder",
    "QueueSubscription",
    "Subscription",
    "Throttled",
    "bus",
    "get_bus",
    "json_safe",
    "matches",
    "publish",
    "subscribe",
    "throttle",
    "topics",
    "validate_topic",
]


def __getattr__(name: str) -> Any:
    if name == "bus":  # not cached: always the current default bus (a forked child gets a new one)
        return get_bus()
    raise AttributeError(f"module 'qlm_kernel.events' has no attribute {name!r}")
