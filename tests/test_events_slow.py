"""A slow subscriber never blocks the publisher: bounded buffers drop the OLDEST events and count them.

No timing thresholds are asserted: the proof is that every publish returned while the subscriber was
provably stuck, plus exact counters and which events survived.
"""

from __future__ import annotations

import threading
import time

import pytest

from qlm_kernel.events import Bus, Event

WAIT = 10.0


@pytest.fixture
def bus():
    before = set(threading.enumerate())
    b = Bus(source="test")
    yield b
    b.close(timeout=WAIT)
    assert [t for t in threading.enumerate() if t not in before] == []


def test_publisher_runs_on_while_subscriber_is_stuck_and_oldest_events_are_dropped(bus):
    entered, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def stuck(event: Event) -> None:
        entered.set()
        release.wait(WAIT)  # stuck until the test lets go
        seen.append(event.payload["i"])

    sub = bus.subscribe("job.*", stuck, maxsize=10)
    bus.publish("job.progress", {"i": 0})
    assert entered.wait(WAIT)  # the dispatcher holds event 0 and is blocked

    durations = []
    for i in range(1, 1000):
        t0 = time.perf_counter()
        bus.publish("job.progress", {"i": i})
        durations.append(time.perf_counter() - t0)
    # every publish returned while the subscriber was still stuck
    assert not release.is_set() and seen == []
    assert sub.dropped == 999 - 10
    assert sub.pending == 11  # 10 buffered + the one in flight
    assert sub.received == sub.delivered + sub.dropped + sub.pending
    print(f"publish while stuck: median {sorted(durations)[len(durations) // 2] * 1e6:.1f} us")

    release.set()
    assert sub.wait_idle(WAIT)
    assert seen == [0, *range(990, 1000)]  # drop-oldest: the newest events survived
    assert (sub.delivered, sub.dropped, sub.errors, sub.pending) == (11, 989, 0, 0)


def test_sleeping_subscriber_with_small_queue_sees_the_newest_events(bus):
    seen: list[int] = []

    def slow(event: Event) -> None:
        time.sleep(0.001)
        seen.append(event.payload["i"])

    sub = bus.subscribe("job.*", slow, maxsize=20)
    fast: list[int] = []
    fast_sub = bus.subscribe("job.*", lambda e: fast.append(e.payload["i"]), maxsize=10_000)
    n = 3000
    for i in range(n):
        bus.publish("job.progress", {"i": i})
    assert sub.dropped > 0
    assert sub.received == n == sub.delivered + sub.dropped + sub.pending
    assert sub.wait_idle(WAIT) and fast_sub.wait_idle(WAIT)
    assert seen == sorted(seen) and seen[-1] == n - 1  # in order, and the last event always arrives
    assert seen[-20:] == list(range(n - 20, n))
    assert len(seen) + sub.dropped == n
    assert fast == list(range(n)) and fast_sub.dropped == 0  # a slow neighbour costs the others nothing


def test_slow_subscriber_does_not_block_other_publishers_threads(bus):
    release = threading.Event()
    entered = threading.Event()

    def stuck(event: Event) -> None:
        entered.set()
        release.wait(WAIT)

    sub = bus.subscribe("*", stuck, maxsize=5)
    bus.publish("job.created")
    assert entered.wait(WAIT)
    finished = []

    def publisher(k: int) -> None:
        for i in range(500):
            bus.publish("job.progress", {"k": k, "i": i})
        finished.append(k)

    threads = [threading.Thread(target=publisher, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert sorted(finished) == [0, 1, 2, 3] and not release.is_set()
    assert sub.dropped == 2000 - 5
    release.set()
    assert sub.wait_idle(WAIT)
