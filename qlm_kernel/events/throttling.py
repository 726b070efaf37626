"""`throttle`: call a subscriber at most N times a second with the latest event (widget refresh rate).

Events arriving faster are coalesced: only the newest is kept, and a trailing call (on a short-lived
timer thread) delivers it once the interval has passed, so the final state is never lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from qlm_kernel.errors import ConfigError
from qlm_kernel.events.event import Event
from qlm_kernel.events.logs import logger, should_log

_NOTHING: Any = object()


class Throttled:
    """A callable wrapper around ``callback(event)``; see `throttle`. Calls never overlap and never
    deliver an older event after a newer one. Counters: ``calls``, ``coalesced``, ``errors``."""

    def __init__(self, callback: Callable[[Event], Any], max_per_second: float) -> None:
        if not callable(callback):
            raise ConfigError("throttle needs a callable", hint="throttle(fn, max_per_second=5)")
        try:
            rate = float(max_per_second)
        except (TypeError, ValueError):
            rate = 0.0
        if not rate > 0 or rate == float("inf"):
            raise ConfigError(
                f"max_per_second must be a positive number, got {max_per_second!r}",
                hint="e.g. throttle(fn, 5) for five updates per second",
            )
        self.callback = callback
        self.max_per_second = rate
        self.interval = 1.0 / rate
        self.calls = 0
        self.coalesced = 0
        self.errors = 0
        self._state = threading.Lock()  # guards the fields below
        self._call_lock = threading.Lock()  # serializes calls of the callback
        self._last = float("-inf")  # monotonic time of the last (started) call
        self._ticket = 0  # increments per incoming event
        self._done_ticket = 0  # ticket of the newest event handed to the callback
        self._latest: Any = _NOTHING
        self._latest_ticket = 0
        self._timer: threading.Timer | None = None
        self._threads: list[threading.Thread] = []

    def __call__(self, event: Event) -> None:
        with self._state:
            self._ticket += 1
            ticket = self._ticket
            now = time.monotonic()
            if self._timer is None and now - self._last >= self.interval:
                self._last = now
                fire = True
            else:
                fire = False
                if self._latest is not _NOTHING:
                    self.coalesced += 1
                self._latest, self._latest_ticket = event, ticket
                if self._timer is None:
                    self._schedule(self._last + self.interval - now)
        if fire:
            self._invoke(event, ticket)  # errors propagate: the subscription counts and logs them

    def flush(self) -> None:
        """Deliver the held-back event now, if any (e.g. before closing a widget)."""
        with self._state:
            self._cancel_timer()
            event, ticket = self._take_latest()
            if event is not _NOTHING:
                self._last = time.monotonic()
        if event is not _NOTHING:
            self._invoke(event, ticket)

    def close(self, timeout: float | None = 1.0) -> None:
        """Drop any held-back event and wait for timer threads to end."""
        with self._state:
            self._cancel_timer()
            self._take_latest()
            threads, self._threads = self._threads, []
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    # -- internals --------------------------------------------------------------------------------
    def _schedule(self, delay: float) -> None:
        timer = threading.Timer(max(0.0, delay), self._trailing)
        timer.daemon = True
        timer.name = "qlm-events-throttle"
        self._timer = timer
        self._threads = [t for t in self._threads if t.is_alive()] + [timer]
        timer.start()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _take_latest(self) -> tuple[Any, int]:
        event, ticket = self._latest, self._latest_ticket
        self._latest = _NOTHING
        return event, ticket

    def _trailing(self) -> None:
        with self._state:
            if self._timer is not threading.current_thread():
                return  # cancelled or superseded
            self._timer = None
            event, ticket = self._take_latest()
            if event is _NOTHING:
                return
            self._last = time.monotonic()
        try:
            self._invoke(event, ticket)
        except Exception:
            self.errors += 1
            if should_log(self.errors):
                logger.error("throttled subscriber %r failed", self.callback, exc_info=True)

    def _invoke(self, event: Event, ticket: int) -> None:
        with self._call_lock:
            if ticket <= self._done_ticket:
                return  # a newer event already went out
            self._done_ticket = ticket
            self.calls += 1
            self.callback(event)


def throttle(callback: Callable[[Event], Any], max_per_second: float) -> Throttled:
    """Wrap ``callback`` so it runs at most ``max_per_second`` times a second with the LATEST event.

    The first event after a quiet interval goes through at once; later ones within the interval are
    coalesced and the newest is delivered by a trailing call. Use as a subscriber:
    ``bus.subscribe("job.progress", throttle(widget.update, 5))``.
    """
    return Throttled(callback, max_per_second)
