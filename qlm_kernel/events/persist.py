"""`EventRecorder`: the seam between the bus and durable storage, writing events in batches.

It subscribes with a bounded in-memory buffer (publishers only append) and a background writer thread
calls ``sink(rows)`` with ``event.to_dict()`` rows in ``seq`` order, when a batch is full or
``flush_interval`` has passed, and on `close`. The store provides ``store.append_events`` as the sink;
a sink should be all-or-nothing per call, because a batch that raised is retried as a whole. A sink
that raises `ConfigError` refuses the data itself: retrying cannot help, so that batch is retried row
by row and only the refused rows are dropped.
"""

from __future__ import annotations

import _thread
import atexit
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from qlm_kernel.errors import ConfigError
from qlm_kernel.events.event import Event
from qlm_kernel.events.logs import logger, should_log
from qlm_kernel.events.pubsub import Bus
from qlm_kernel.events.topics import validate_pattern

Sink = Callable[[list[dict[str, Any]]], Any]


class EventRecorder:
    """Record events matching ``pattern`` from ``bus`` into ``sink`` in batches, off the publishers' path.

    If the sink fails, the batch is kept and retried with backoff (errors counted and logged); the
    buffer never grows past ``max_buffered`` events (default: 100 batches, at least 50,000): the
    oldest are dropped and counted instead.
    Counters: ``received``, ``written``, ``batches``, ``errors``, ``dropped``, ``pending``.
    """

    def __init__(self, bus: Bus, sink: Sink, *, pattern: str = "*", batch_size: int = 500,
                 flush_interval: float = 0.25, max_buffered: int | None = None,
                 max_backoff: float = 2.0, name: str = "recorder") -> None:
        if not callable(sink):
            raise ConfigError("EventRecorder needs a callable sink(rows)", hint="e.g. store.append_events")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
        if not flush_interval > 0:
            raise ConfigError(f"flush_interval must be > 0 seconds, got {flush_interval!r}")
        if max_buffered is not None and (not isinstance(max_buffered, int) or max_buffered < 1):
            raise ConfigError(f"max_buffered must be a positive int, got {max_buffered!r}")
        validate_pattern(pattern)  # before the writer thread starts, so a bad pattern leaks nothing
        self.sink = sink
        self.batch_size = batch_size
        self.flush_interval = float(flush_interval)
        self.max_buffered = max(max_buffered or max(100 * batch_size, 50_000), batch_size)
        self.max_backoff = float(max_backoff)
        self.received = 0
        self.written = 0
        self.batches = 0
        self.errors = 0
        self.dropped = 0
        self._buf: deque[Event] = deque()
        self._lock = _thread.allocate_lock()  # guards _buf, counters and flags
        self._signal = _thread.allocate_lock()  # held while the writer sleeps; released to wake it
        self._signal.acquire()
        self._sleeping = False
        self._flush_now = False
        self._closing = False
        self._close_deadline = float("inf")
        self._closed = False
        self._progress = threading.Condition()  # notified after each batch, for flush()
        self._thread = threading.Thread(target=self._run, name=f"qlm-events-{name}", daemon=True)
        self._thread.start()
        self.subscription = bus.subscribe(pattern, self, name=name)
        atexit.register(self.close)

    @property
    def pending(self) -> int:
        """Events buffered but not yet written."""
        return len(self._buf)

    def put_nowait(self, event: Event) -> None:
        """The bus hands events here (queue-target interface): append, drop the oldest when full."""
        with self._lock:
            buf = self._buf
            if len(buf) >= self.max_buffered:
                buf.popleft()
                self.dropped += 1
            buf.append(event)
            self.received += 1
            if self._sleeping and (len(buf) == 1 or len(buf) == self.batch_size):
                self._wake()

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything received so far now; True once written (or dropped), False on timeout."""
        with self._lock:
            target = self.received
            self._flush_now = True
            self._wake()
        with self._progress:
            return self._progress.wait_for(
                lambda: self.written + self.dropped >= target or not self._thread.is_alive(), timeout
            )

    def close(self, timeout: float = 5.0) -> None:
        """Stop recording: unsubscribe, write everything left (retrying a failing sink for up to
        ``timeout`` s, then dropping what remains) and stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self.subscription.unsubscribe()
        with self._lock:
            self._closing = True
            self._close_deadline = time.monotonic() + timeout
            self._wake()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout + 1.0)

    def stats(self) -> dict[str, Any]:
        """The counters as a JSON-safe dict."""
        return {
            "received": self.received,
            "written": self.written,
            "batches": self.batches,
            "errors": self.errors,
            "dropped": self.dropped,
            "pending": self.pending,
            "closed": self._closed,
        }

    def __enter__(self) -> EventRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writer thread ----------------------------------------------------------------------------
    def _wake(self) -> None:
        """Release the sleeping writer (call with ``_lock`` held)."""
        if self._sleeping:
            self._sleeping = False
            self._signal.release()

    def _sleep(self, seconds: float) -> None:
        """Sleep until woken or ``seconds`` pass (negative: until woken); ``_sleeping`` is already set."""
        if self._signal.acquire(timeout=seconds if seconds >= 0 else -1):
            return
        with self._lock:
            if self._sleeping:
                self._sleeping = False  # nobody woke us
            else:
                self._signal.acquire()  # a wake-up raced the timeout: consume it

    def _run(self) -> None:
        deadline: float | None = None  # when the current partial batch is due
        retry_at = 0.0  # backoff after a failing sink
        failures = 0
        while True:
            batch: list[Event] = []
            with self._lock:
                now = time.monotonic()
                n = len(self._buf)
                if n == 0:
                    deadline = None
                    self._flush_now = False
                    if self._closing:
                        break
                    wait = -1.0
                else:
                    if deadline is None:
                        deadline = now + self.flush_interval
                    due = n >= self.batch_size or now >= deadline or self._flush_now or self._closing
                    last_chance = self._closing and now >= self._close_deadline
                    if due and (now >= retry_at or last_chance):
                        batch = [self._buf.popleft() for _ in range(min(n, self.batch_size))]
                        wait = 0.0
                    else:
                        wait = (deadline if not due else retry_at) - now
                        wait = max(0.0, min(wait, self._close_deadline - now))
                if not batch:
                    self._sleeping = True
            if not batch:
                self._sleep(wait)
                continue
            batch = self._write(batch)
            if not batch:
                failures, retry_at = 0, 0.0
                if not self._buf:
                    deadline = None
                continue
            failures += 1
            backoff = min(self.flush_interval * 2 ** min(failures - 1, 16), self.max_backoff)
            retry_at = time.monotonic() + backoff
            with self._lock:
                self._buf.extendleft(reversed(batch))
                overflow = len(self._buf) - self.max_buffered
                for _ in range(max(0, overflow)):
                    self._buf.popleft()
                self.dropped += max(0, overflow)
                if self._closing and time.monotonic() >= self._close_deadline:
                    lost = len(self._buf)
                    self._buf.clear()
                    self.dropped += lost
                    logger.error("event recorder closed with a failing sink: %d events dropped", lost)
            self._notify()
        self._notify()

    def _write(self, batch: list[Event]) -> list[Event]:
        """Call the sink; return the events still to be written (empty when done)."""
        try:
            self.sink([event.to_dict() for event in batch])
        except ConfigError:
            self._failed(len(batch), "refused")
            return self._write_one_by_one(batch)
        except Exception:
            self._failed(len(batch), "failed")
            return batch
        self._count_written(len(batch))
        return []

    def _write_one_by_one(self, batch: list[Event]) -> list[Event]:
        """After the sink refused a batch: write row by row, dropping only the rows it refuses."""
        for k, event in enumerate(batch):
            try:
                self.sink([event.to_dict()])
            except ConfigError:
                with self._lock:
                    self.dropped += 1
                logger.error("event sink refused event %s #%d: dropped", event.topic, event.seq,
                             exc_info=True)
            except Exception:
                self._failed(len(batch) - k, "failed")
                return batch[k:]
            else:
                self._count_written(1)
        return []

    def _failed(self, n: int, how: str) -> None:
        self.errors += 1
        if should_log(self.errors):
            logger.error(
                "event sink %r %s on %d events (failure %d)", self.sink, how, n, self.errors, exc_info=True
            )

    def _count_written(self, n: int) -> None:
        with self._lock:
            self.written += n
            self.batches += 1
        self._notify()

    def _notify(self) -> None:
        with self._progress:
            self._progress.notify_all()
