"""Subscriptions: how one subscriber receives events without ever slowing down or breaking a publisher.

A callable subscriber gets a bounded buffer drained by its own daemon dispatcher thread; a queue target
(anything with ``put_nowait``) is fed directly. Either way a full buffer drops its OLDEST event and
counts it, so publishing never blocks and a lagging subscriber ends up with the newest events.
"""

from __future__ import annotations

import _thread
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from qlm_kernel.events.event import Event
from qlm_kernel.events.logs import logger, should_log
from qlm_kernel.events.topics import compile_pattern

if TYPE_CHECKING:
    from qlm_kernel.events.pubsub import Bus


class QueueLike(Protocol):
    """What a queue target must offer: ``put_nowait`` (raising `queue.Full` when full); ``get_nowait``
    is used to drop the oldest item when it is."""

    def put_nowait(self, item: Any) -> None: ...


class Subscription:
    """One subscriber on a bus: its pattern, target and counters (``received`` = ``delivered`` +
    ``dropped`` + ``pending`` while active; ``errors`` counts deliveries whose target raised)."""

    kind = "base"

    def __init__(self, bus: Bus, pattern: str, target: Any, *, name: str, maxsize: int) -> None:
        self.bus = bus
        self.pattern = pattern
        self.target = target
        self.name = name
        self.maxsize = maxsize
        self.matches: Callable[[str], bool] = compile_pattern(pattern)
        self.received = 0
        self.delivered = 0
        self.dropped = 0
        self.errors = 0
        self._active = True

    @property
    def active(self) -> bool:
        """False once unsubscribed (or the bus closed)."""
        return self._active

    @property
    def pending(self) -> int:
        """Events accepted but not yet handed to the target."""
        return 0

    def unsubscribe(self, timeout: float | None = 5.0) -> None:
        """Stop delivery now: no new events, pending ones discarded, and (unless called from the
        callback itself) wait up to ``timeout`` s for a callback in progress to return."""
        self.bus._detach(self)
        self._stop(drain=False)
        self._join(timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending (every accepted event was handed over); False on timeout."""
        return True

    def stats(self) -> dict[str, Any]:
        """The counters as a JSON-safe dict (what `Bus.stats` lists per subscriber)."""
        return {
            "name": self.name,
            "pattern": self.pattern,
            "kind": self.kind,
            "maxsize": self.maxsize,
            "active": self._active,
            "received": self.received,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "errors": self.errors,
            "pending": self.pending,
        }

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        state = "active" if self._active else "closed"
        return (
            f"<{type(self).__name__} {self.name!r} pattern={self.pattern!r} {state} "
            f"delivered={self.delivered} dropped={self.dropped} errors={self.errors}>"
        )

    # -- bus side ---------------------------------------------------------------------------------
    def _offer(self, event: Event) -> None:
        """Hand ``event`` over without blocking. Called by the bus with its lock held."""
        raise NotImplementedError

    def _stop(self, *, drain: bool) -> None:
        """Accept nothing more; with ``drain`` deliver what is buffered first, else discard it."""
        self._active = False

    def _join(self, timeout: float | None) -> None:
        """Wait for the delivery machinery to finish (no-op when there is none)."""

    def _log_failure(self, what: str) -> None:
        if should_log(self.errors):
            logger.error(
                "event subscriber %r (pattern %r) failed %s (%d failures so far)",
                self.name, self.pattern, what, self.errors, exc_info=True,
            )


class CallbackSubscription(Subscription):
    """A callable ``fn(event)`` run by a dedicated daemon thread from a bounded drop-oldest buffer."""

    kind = "callback"

    def __init__(self, bus: Bus, pattern: str, target: Callable[[Event], Any], *, name: str,
                 maxsize: int) -> None:
        super().__init__(bus, pattern, target, name=name, maxsize=maxsize)
        self._buf: deque[Event] = deque()
        self._lock = _thread.allocate_lock()  # guards _buf and the flags below
        self._signal = _thread.allocate_lock()  # held while the dispatcher sleeps; released to wake it
        self._signal.acquire()
        self._sleeping = False
        self._busy = False
        self._stopping = False
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"qlm-events:{name}", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return len(self._buf) + self._busy

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)

    def _offer(self, event: Event) -> None:
        with self._lock:
            if self._stopping:
                return
            buf = self._buf
            if len(buf) >= self.maxsize:
                buf.popleft()
                self.dropped += 1
            buf.append(event)
            self.received += 1
            if self._sleeping:
                self._sleeping = False
                self._idle.clear()
                self._signal.release()

    def _stop(self, *, drain: bool) -> None:
        self._active = False
        with self._lock:
            self._stopping = True
            if not drain:
                self._buf.clear()
            if self._sleeping:
                self._sleeping = False
                self._signal.release()

    def _join(self, timeout: float | None) -> None:
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        """The dispatcher: pop one event at a time and run the callback outside every lock."""
        fn = self.target
        lock, buf = self._lock, self._buf
        while True:
            with lock:
                if buf:
                    event = buf.popleft()
                    self._busy = True
                else:
                    self._busy = False
                    self._idle.set()
                    if self._stopping:
                        return
                    self._sleeping = True
                    event = None
            if event is None:
                self._signal.acquire()
                continue
            try:
                fn(event)
            except BaseException:  # a subscriber's bug must never kill its dispatcher
                self.errors += 1
                self._log_failure(f"on {event.topic} #{event.seq}")
            self.delivered += 1


class QueueSubscription(Subscription):
    """A queue target fed with ``put_nowait`` in the publisher's thread; when full, its oldest item is
    taken out (``get_nowait``) to make room. The queue's own maxsize bounds it; ``maxsize`` is unused."""

    kind = "queue"

    def _offer(self, event: Event) -> None:
        self.received += 1
        target = self.target
        try:
            target.put_nowait(event)
        except queue.Full:
            self._make_room(event)
            return
        except Exception:
            self.errors += 1
            self._log_failure(f"to accept {event.topic} #{event.seq}")
            return
        self.delivered += 1

    def _make_room(self, event: Event) -> None:
        target = self.target
        try:
            for _ in range(4):  # the consumer may race us; a few rounds settle it
                try:
                    target.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass
                try:
                    target.put_nowait(event)
                except queue.Full:
                    continue
                self.delivered += 1
                return
        except Exception:
            self.errors += 1
            self._log_failure(f"while dropping the oldest event for {event.topic} #{event.seq}")
            return
        self.dropped += 1  # could not make room: the new event is the one lost
