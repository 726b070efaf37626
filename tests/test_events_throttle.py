"""`throttle`: at most N calls a second, coalescing to the LATEST event, with a trailing final call."""

from __future__ import annotations

import threading
import time

import pytest

from qlm_kernel.errors import ConfigError
from qlm_kernel.events import Bus, Event, throttle

WAIT = 10.0


def _event(seq: int) -> Event:
    return Event(seq, "job.progress", {"done": seq}, time.time(), "test")


@pytest.fixture
def no_leaks():
    before = set(threading.enumerate())
    yield
    assert [t for t in threading.enumerate() if t not in before] == []


def test_leading_call_then_coalesced_trailing_call_with_latest_event(no_leaks):
    calls: list[tuple[int, float]] = []
    got_last = threading.Event()

    def update(event: Event) -> None:
        calls.append((event.seq, time.monotonic()))
        if event.seq == 50:
            got_last.set()

    wrapped = throttle(update, 10)  # one call per 100 ms
    start = time.monotonic()
    for seq in range(1, 51):
        wrapped(_event(seq))
        if seq % 10 == 0:
            time.sleep(0.03)
    assert calls[0][0] == 1  # the first event goes through at once
    assert got_last.wait(WAIT)  # the final event is always delivered, by a trailing call
    elapsed = time.monotonic() - start
    wrapped.close()
    seqs = [s for s, _ in calls]
    assert seqs[-1] == 50 and seqs == sorted(seqs)
    assert wrapped.calls == len(calls) < 50
    assert wrapped.coalesced == 50 - len(calls)
    assert len(calls) >= 2  # leading + trailing
    assert len(calls) <= elapsed * 10 + 1  # never faster than the rate (bound from the measured time)


def test_throttled_bus_subscriber_gets_the_final_event(no_leaks):
    bus = Bus(source="test")
    calls: list[int] = []
    final = threading.Event()

    def widget(event: Event) -> None:
        calls.append(event.payload["done"])
        if event.payload["done"] == 999:
            final.set()

    wrapped = throttle(widget, 20)
    sub = bus.subscribe("job.progress", wrapped)
    start = time.monotonic()
    for i in range(1000):
        bus.publish("job.progress", {"done": i})
        if i % 100 == 0:
            time.sleep(0.01)  # a job that takes a little while
    assert final.wait(WAIT)
    elapsed = time.monotonic() - start
    assert sub.wait_idle(WAIT)
    bus.close(timeout=WAIT)
    wrapped.close()
    assert calls[-1] == 999 and calls == sorted(calls)
    assert len(calls) <= elapsed * 20 + 2  # rate bound (derived from the measured time, not a threshold)
    assert sub.delivered == 1000 and sub.errors == 0


def test_flush_delivers_the_held_event_now_and_close_drops_it(no_leaks):
    calls: list[int] = []
    wrapped = throttle(lambda e: calls.append(e.seq), 0.5)  # one call per 2 s
    wrapped(_event(1))
    wrapped(_event(2))
    wrapped(_event(3))
    assert calls == [1]
    wrapped.flush()
    assert calls == [1, 3]
    wrapped(_event(4))
    wrapped.close()  # cancels the pending trailing call
    time.sleep(0.01)
    assert calls == [1, 3]
    assert wrapped.coalesced == 1


def test_slow_callback_never_runs_concurrently_or_out_of_order(no_leaks):
    active = []
    overlap = []
    seen: list[int] = []
    done = threading.Event()

    def slow(event: Event) -> None:
        active.append(1)
        if len(active) > 1:
            overlap.append(event.seq)
        time.sleep(0.03)  # slower than the 10 ms interval
        seen.append(event.seq)
        active.pop()
        if event.seq == 40:
            done.set()

    wrapped = throttle(slow, 100)
    for seq in range(1, 41):
        wrapped(_event(seq))
        time.sleep(0.002)
    assert done.wait(WAIT)
    wrapped.close()
    assert overlap == []
    assert seen == sorted(seen) and seen[-1] == 40


def test_trailing_failure_is_counted_and_logged(no_leaks, caplog):
    failed = threading.Event()

    def bad(event: Event) -> None:
        if event.seq == 2:
            failed.set()
            raise ValueError("widget gone")

    wrapped = throttle(bad, 50)
    wrapped(_event(1))
    with caplog.at_level("ERROR", logger="qlm_kernel.events"):
        wrapped(_event(2))  # held back, delivered by the trailing timer thread
        assert failed.wait(WAIT)
        wrapped.close()
    assert wrapped.errors == 1
    assert any("throttled" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf"), "fast", None])
def test_bad_rates_raise(rate):
    with pytest.raises(ConfigError):
        throttle(print, rate)
    with pytest.raises(ConfigError):
        throttle("not callable", 5)  # type: ignore[arg-type]
