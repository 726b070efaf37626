"""Event bus benchmark: how fast a publisher runs with no, fast, slow, queue and recorder subscribers.

Run: ``.venv/bin/python bench/events.py [--events 100000] [--repeat 5]``. Prints medians over the
runs (a fresh `Bus` per run) and the dropped counts. The issue's target: one slow subscriber (1 ms
per event, small queue) must not cut the publisher's rate by more than half (ratio >= 0.5).
"""

from __future__ import annotations

import argparse
import queue
import statistics
import time
from collections.abc import Callable
from typing import Any

from qlm_kernel.events import Bus, Event, EventRecorder

Setup = Callable[[Bus], Callable[[], int]]  # attaches subscribers, returns "how many were dropped"


def no_subscriber(bus: Bus) -> Callable[[], int]:
    return lambda: 0


def other_topic_subscriber(bus: Bus) -> Callable[[], int]:
    sub = bus.subscribe("heal.*", lambda event: None)
    return lambda: sub.dropped


def fast_subscriber(bus: Bus) -> Callable[[], int]:
    count = [0]

    def counter(event: Event) -> None:
        count[0] += 1

    sub = bus.subscribe("job.*", counter)  # default maxsize=1000
    return lambda: sub.dropped


def slow_subscriber(bus: Bus) -> Callable[[], int]:
    sub = bus.subscribe("job.*", lambda event: time.sleep(0.001), maxsize=100)
    return lambda: sub.dropped


def unread_queue(bus: Bus) -> Callable[[], int]:
    sub = bus.subscribe("job.*", queue.Queue(maxsize=100))  # nobody reads it: every put drops the oldest
    return lambda: sub.dropped


def recorder(bus: Bus) -> Callable[[], int]:
    rows: list[dict[str, Any]] = []
    rec = EventRecorder(bus, rows.extend, batch_size=500, flush_interval=0.25)

    def dropped() -> int:
        rec.close()
        return rec.dropped

    return dropped


SCENARIOS: dict[str, Setup] = {
    "no subscriber": no_subscriber,
    "1 subscriber, other topic": other_topic_subscriber,
    "1 fast subscriber": fast_subscriber,
    "1 slow subscriber (1 ms/event, maxsize 100)": slow_subscriber,
    "1 unread bounded queue (maxsize 100)": unread_queue,
    "EventRecorder -> list sink": recorder,
}


def run_once(setup: Setup, n: int) -> tuple[float, int]:
    """Publish ``n`` events on a fresh bus; return (events per second, dropped)."""
    bus = Bus(source="bench")
    dropped = setup(bus)
    publish = bus.publish
    t0 = time.perf_counter()
    for i in range(n):
        publish("job.progress", {"i": i})
    elapsed = time.perf_counter() - t0
    lost = dropped()
    bus.close(timeout=5.0, drain=False)
    return n / elapsed, lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events published per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per scenario (median reported)")
    args = parser.parse_args()

    run_once(no_subscriber, 10_000)  # warm-up
    print(f"event bus publish rate: {args.events:,} events per run, median of {args.repeat} runs\n")
    print(f"{'scenario':<46}{'events/s':>12}{'us/publish':>12}{'vs none':>9}{'dropped':>10}")
    medians: dict[str, float] = {}
    for label, setup in SCENARIOS.items():
        runs = [run_once(setup, args.events) for _ in range(args.repeat)]
        rate = statistics.median(r for r, _ in runs)
        dropped = int(statistics.median(d for _, d in runs))
        medians[label] = rate
        base = medians["no subscriber"]
        print(f"{label:<46}{rate:>12,.0f}{1e6 / rate:>12.2f}{rate / base:>9.2f}{dropped:>10,}")

    slow = medians["1 slow subscriber (1 ms/event, maxsize 100)"] / medians["no subscriber"]
    verdict = "met" if slow >= 0.5 else "NOT met"
    print(f"\nslow subscriber / no subscriber rate: {slow:.2f} (target >= 0.50: {verdict})")


if __name__ == "__main__":
    main()
