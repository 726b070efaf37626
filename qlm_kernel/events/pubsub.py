"""`Bus`: in-memory, thread-safe publish/subscribe for one kernel process.

Publishing assigns the sequence number and hands the event to every matching subscription under one
lock, so each subscriber sees events in ``seq`` order even with many publisher threads. Hand-over never
blocks (see `subscription`); routing is cached per topic, so a publish costs a few microseconds.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from qlm_kernel.errors import ConfigError
from qlm_kernel.events.event import Event
from qlm_kernel.events.subscription import CallbackSubscription, QueueSubscription, Subscription
from qlm_kernel.events.topics import validate_pattern, validate_topic

# One counter for the whole process: events from any bus are totally ordered by seq.
_SEQ = itertools.count(1)


class Bus:
    """Topic-based pub/sub: `publish` from any thread, `subscribe` callables or queues by pattern."""

    def __init__(self, *, source: str | None = None) -> None:
        self.source = source or f"kernel:{os.getpid()}"
        self._lock = threading.RLock()  # re-entrant: a queue target's put_nowait may publish
        self._subs: list[Subscription] = []
        self._routes: dict[str, tuple[Subscription, ...]] = {}
        self._counts: dict[str, int] = {}
        self._published = 0

    def publish(self, topic: str, payload: Mapping[str, Any] | None = None, *,
                source: str | None = None) -> Event:
        """Publish ``payload`` (a JSON-safe dict, copied) on ``topic`` and return the `Event`.

        Never blocks on subscribers and never raises because of them; raises `ConfigError` only for
        a malformed topic or a payload that is not a mapping.
        """
        if payload is None:
            data: dict[str, Any] = {}
        elif type(payload) is dict:
            data = payload.copy()
        elif isinstance(payload, Mapping):
            data = dict(payload)
        else:
            raise ConfigError(
                f"event payload must be a dict, got {type(payload).__name__}",
                hint="publish(topic, {'key': value, ...})", topic=topic,
            )
        with self._lock:
            subs = self._routes.get(topic)
            if subs is None:
                subs = self._route(topic)
            self._published += 1
            self._counts[topic] += 1
            event = Event(next(_SEQ), topic, data, time.time(), source or self.source)
            for sub in subs:
                sub._offer(event)
        return event

    def subscribe(self, pattern: str, target: Callable[[Event], Any] | Any, *, maxsize: int = 1000,
                  name: str | None = None) -> Subscription:
        """Deliver events whose topic matches ``pattern`` to ``target`` until unsubscribed.

        ``target`` is a callable ``fn(event)`` (run in its own dispatcher thread from a buffer of
        ``maxsize`` events, oldest dropped when full) or a queue-like object with ``put_nowait``
        (called in the publisher's thread, so it must not block). Size ``maxsize`` for bursts: a
        dispatcher may wait one GIL switch interval (5 ms) before it runs.
        """
        validate_pattern(pattern)
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ConfigError(f"maxsize must be a positive int, got {maxsize!r}", hint="e.g. maxsize=1000")
        label = name or _describe(target)
        sub: Subscription
        if hasattr(target, "put_nowait"):
            sub = QueueSubscription(self, pattern, target, name=label, maxsize=maxsize)
        elif callable(target):
            sub = CallbackSubscription(self, pattern, target, name=label, maxsize=maxsize)
        else:
            raise ConfigError(
                f"cannot subscribe a {type(target).__name__}",
                hint="pass a callable fn(event) or a queue.Queue-like object with put_nowait",
            )
        with self._lock:
            self._subs.append(sub)
            for topic, subs in self._routes.items():
                if sub.matches(topic):
                    self._routes[topic] = (*subs, sub)
        return sub

    def stats(self) -> dict[str, Any]:
        """Published count, per-topic counts and every subscriber's counters (JSON-safe)."""
        with self._lock:
            subs = list(self._subs)
            return {
                "source": self.source,
                "published": self._published,
                "topics": dict(sorted(self._counts.items())),
                "subscribers": [sub.stats() for sub in subs],
            }

    @property
    def subscriptions(self) -> list[Subscription]:
        """The active subscriptions, oldest first (a copy)."""
        with self._lock:
            return list(self._subs)

    def close(self, timeout: float = 5.0, *, drain: bool = True) -> None:
        """Unsubscribe everyone and join their dispatcher threads, waiting at most ``timeout`` s in all.

        With ``drain`` buffered events are still delivered within that time. The bus stays usable:
        later subscriptions work as on a new bus.
        """
        with self._lock:
            subs, self._subs = self._subs, []
            self._routes.clear()
        for sub in subs:
            sub._stop(drain=drain)
        deadline = time.monotonic() + timeout
        for sub in subs:
            sub._join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Bus source={self.source!r} subscribers={len(self._subs)} published={self._published}>"

    # -- internals --------------------------------------------------------------------------------
    def _route(self, topic: str) -> tuple[Subscription, ...]:
        """First publish of ``topic``: check the name, find its subscribers, cache them."""
        validate_topic(topic)
        subs = tuple(sub for sub in self._subs if sub.matches(topic))
        self._routes[topic] = subs
        self._counts.setdefault(topic, 0)
        return subs

    def _detach(self, sub: Subscription) -> None:
        """Remove ``sub`` from routing; after this returns no publisher hands it another event."""
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
                for topic, subs in self._routes.items():
                    if sub in subs:
                        self._routes[topic] = tuple(s for s in subs if s is not sub)


def _describe(target: Any) -> str:
    """A readable default subscriber name: the callable's qualified name or the queue's type."""
    if hasattr(target, "put_nowait"):
        return type(target).__name__
    name = getattr(target, "__qualname__", None) or type(target).__name__
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if module and module != "builtins" else name
