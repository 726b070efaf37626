"""The Bus with real threads: events, ordering, concurrency, failures, unsubscribe, queues, stats, close."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import queue
import threading

import pytest

import qlm_kernel.events as events
from qlm_kernel.errors import ConfigError
from qlm_kernel.events import Bus, Event

WAIT = 10.0  # generous upper bound for waits that normally take milliseconds


@pytest.fixture
def bus():
    """A private bus; on teardown it is closed and must leave no thread behind."""
    before = set(threading.enumerate())
    b = Bus(source="test")
    yield b
    b.close(timeout=WAIT)
    leaked = [t for t in threading.enumerate() if t not in before]
    assert leaked == []


# -- events ----------------------------------------------------------------------------------------
def test_publish_returns_a_frozen_event_with_increasing_seq(bus):
    a = bus.publish("job.created", {"job_id": "j1"})
    b = bus.publish("job.progress", {"job_id": "j1", "done": 1}, source="optimizer")
    assert isinstance(a, Event)
    assert (a.topic, a.payload, a.source) == ("job.created", {"job_id": "j1"}, "test")
    assert b.source == "optimizer"
    assert b.seq > a.seq
    assert b.time >= a.time > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.topic = "x"  # type: ignore[misc]
    assert bus.publish("system.error").payload == {}
    assert hash(a) != hash(b)


def test_default_source_names_the_kernel_process():
    assert Bus().source == f"kernel:{os.getpid()}"


def test_payload_is_copied_at_publish(bus):
    payload = {"done": 1}
    event = bus.publish("job.progress", payload)
    payload["done"] = 2
    assert event.payload == {"done": 1}


def test_payload_must_be_a_mapping(bus):
    with pytest.raises(ConfigError):
        bus.publish("job.progress", [("done", 1)])  # type: ignore[arg-type]


def test_to_dict_is_json_safe_and_round_trips(bus):
    event = bus.publish(
        "job.progress",
        {"best": float("nan"), "params": ("fast", 10), "when": dt.datetime(2024, 1, 2), "nested": {1: {2}},
         "obj": object()},
    )
    row = event.to_dict()
    text = json.dumps(row, allow_nan=False)
    back = json.loads(text)
    assert back["payload"]["best"] is None
    assert back["payload"]["params"] == ["fast", 10]
    assert back["payload"]["when"] == "2024-01-02T00:00:00"
    assert back["payload"]["nested"] == {"1": [2]}
    assert set(back) == {"seq", "topic", "payload", "time", "source"}
    again = Event.from_dict(back)
    assert again == dataclasses.replace(event, payload=back["payload"])


# -- delivery and ordering -------------------------------------------------------------------------
def test_callback_subscriber_sees_events_in_publish_order(bus):
    seen: list[Event] = []
    sub = bus.subscribe("job.*", seen.append)
    sent = [bus.publish("job.progress", {"i": i}) for i in range(500)]
    bus.publish("heal.step")  # not matched
    assert sub.wait_idle(WAIT)
    assert seen == sent
    assert (sub.received, sub.delivered, sub.dropped, sub.errors, sub.pending) == (500, 500, 0, 0, 0)


def test_concurrent_publishers_every_event_delivered_exactly_once(bus):
    n_threads, per_thread = 8, 5000
    counts: dict[tuple[int, int], int] = {}
    seqs: list[int] = []

    def count(event: Event) -> None:
        key = (event.payload["thread"], event.payload["i"])
        counts[key] = counts.get(key, 0) + 1
        seqs.append(event.seq)

    sub = bus.subscribe("load.*", count, maxsize=n_threads * per_thread)
    start = threading.Barrier(n_threads)

    def publisher(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            bus.publish("load.tick", {"thread": t, "i": i})

    threads = [threading.Thread(target=publisher, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sub.wait_idle(WAIT)
    assert len(counts) == n_threads * per_thread
    assert set(counts.values()) == {1}
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # strictly increasing per subscriber
    assert (sub.delivered, sub.dropped, sub.errors) == (n_threads * per_thread, 0, 0)
    assert bus.stats()["topics"]["load.tick"] == n_threads * per_thread


def test_failing_subscriber_does_not_affect_publisher_or_others(bus, caplog):
    good: list[int] = []

    def bad(event: Event) -> None:
        if event.payload["i"] % 2 == 0:
            raise RuntimeError(f"boom {event.payload['i']}")

    with caplog.at_level(logging.ERROR, logger="qlm_kernel.events"):
        bad_sub = bus.subscribe("job.*", bad, name="bad")
        good_sub = bus.subscribe("job.*", lambda e: good.append(e.payload["i"]), name="good")
        for i in range(20):
            bus.publish("job.progress", {"i": i})  # never raises
        assert bad_sub.wait_idle(WAIT) and good_sub.wait_idle(WAIT)
    assert good == list(range(20))
    assert (bad_sub.errors, bad_sub.delivered) == (10, 20)  # the dispatcher survived every failure
    records = [r for r in caplog.records if r.name == "qlm_kernel.events"]
    assert records and "bad" in records[0].getMessage() and records[0].exc_info[0] is RuntimeError
    assert good_sub.errors == 0


def test_callback_may_publish_and_unsubscribe_itself(bus):
    seen: list[str] = []
    done = threading.Event()
    holder: dict[str, events.Subscription] = {}

    def relay(event: Event) -> None:
        seen.append(event.topic)
        if event.topic == "job.created":
            bus.publish("job.finished")
        else:
            holder["sub"].unsubscribe()  # from inside its own dispatcher: must not deadlock
            done.set()

    holder["sub"] = bus.subscribe("job.*", relay)
    bus.publish("job.created")
    assert done.wait(WAIT)
    holder["sub"]._join(WAIT)
    assert seen == ["job.created", "job.finished"]
    assert not holder["sub"].active


# -- unsubscribe -----------------------------------------------------------------------------------
def test_unsubscribe_stops_delivery(bus):
    seen: list[int] = []
    sub = bus.subscribe("job.*", lambda e: seen.append(e.payload["i"]))
    bus.publish("job.progress", {"i": 1})
    assert sub.wait_idle(WAIT)
    sub.unsubscribe()
    sub.unsubscribe()  # idempotent
    bus.publish("job.progress", {"i": 2})
    assert seen == [1]
    assert not sub.active and bus.subscriptions == []
    assert sub.received == 1


def test_unsubscribe_waits_for_the_callback_in_flight_and_discards_the_rest(bus):
    entered, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def slow(event: Event) -> None:
        entered.set()
        release.wait(WAIT)
        seen.append(event.payload["i"])

    sub = bus.subscribe("job.*", slow)
    bus.publish("job.progress", {"i": 0})
    assert entered.wait(WAIT)
    for i in range(1, 5):
        bus.publish("job.progress", {"i": i})
    assert sub.pending == 5
    threading.Timer(0.05, release.set).start()
    sub.unsubscribe(timeout=WAIT)  # returns after the in-flight callback finished
    assert seen == [0]
    assert sub.pending == 0


def test_subscription_is_a_context_manager(bus):
    q: queue.Queue = queue.Queue()
    with bus.subscribe("job.*", q) as sub:
        bus.publish("job.created")
    bus.publish("job.created")
    assert q.qsize() == 1 and not sub.active


def test_subscribe_unsubscribe_while_publishing(bus):
    stop = threading.Event()
    errors: list[BaseException] = []

    def publisher() -> None:
        try:
            while not stop.is_set():
                bus.publish("job.progress", {"x": 1})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def churn() -> None:
        try:
            for _ in range(30):
                got: list[Event] = []
                sub = bus.subscribe("job.*", got.append, maxsize=50)
                qsub = bus.subscribe("*", queue.Queue(maxsize=5))
                sub.wait_idle(0.01)
                assert sub.received == sub.delivered + sub.dropped + sub.pending
                sub.unsubscribe()
                qsub.unsubscribe()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pubs = [threading.Thread(target=publisher) for _ in range(2)]
    churners = [threading.Thread(target=churn) for _ in range(3)]
    for t in pubs + churners:
        t.start()
    for t in churners:
        t.join()
    stop.set()
    for t in pubs:
        t.join()
    assert errors == []
    assert bus.subscriptions == []


# -- queue targets ---------------------------------------------------------------------------------
def test_queue_target_receives_events_in_order(bus):
    q: queue.Queue = queue.Queue()
    sub = bus.subscribe("heal.*", q)
    sent = [bus.publish("heal.step", {"i": i}) for i in range(100)]
    assert [q.get_nowait() for _ in range(100)] == sent
    assert (sub.kind, sub.delivered, sub.dropped, sub.pending) == ("queue", 100, 0, 0)
    assert sub.wait_idle(0)


def test_full_queue_target_drops_oldest(bus):
    q: queue.Queue = queue.Queue(maxsize=3)
    sub = bus.subscribe("heal.*", q)
    for i in range(10):
        bus.publish("heal.step", {"i": i})  # never blocks on the full queue
    assert [q.get_nowait().payload["i"] for _ in range(3)] == [7, 8, 9]
    assert (sub.received, sub.delivered, sub.dropped) == (10, 10, 7)


def test_simple_queue_and_failing_queue_targets(bus, caplog):
    sq: queue.SimpleQueue = queue.SimpleQueue()
    bus.subscribe("job.*", sq)

    class Broken:
        def put_nowait(self, item: object) -> None:
            raise OSError("pipe closed")

    with caplog.at_level(logging.ERROR, logger="qlm_kernel.events"):
        broken = bus.subscribe("job.*", Broken(), name="broken")
        bus.publish("job.created")
        bus.publish("job.finished")
    assert [sq.get_nowait().topic for _ in range(2)] == ["job.created", "job.finished"]
    assert broken.errors == 2 and broken.delivered == 0
    assert any("broken" in r.getMessage() for r in caplog.records)


def test_subscribe_rejects_bad_targets_and_sizes(bus):
    with pytest.raises(ConfigError):
        bus.subscribe("job.*", 42)
    with pytest.raises(ConfigError):
        bus.subscribe("job.*", print, maxsize=0)
    with pytest.raises(ConfigError):
        bus.subscribe("job.*", print, maxsize=True)
    assert bus.subscriptions == []


# -- stats and close -------------------------------------------------------------------------------
def test_stats_are_json_safe(bus):
    q: queue.Queue = queue.Queue(maxsize=1)
    got: list[Event] = []
    sub = bus.subscribe("job.*", got.append, name="widget")
    bus.subscribe("*", q, name="mcp-queue")
    bus.publish("job.created")
    bus.publish("job.progress")
    bus.publish("job.progress")
    bus.publish("system.error")
    assert sub.wait_idle(WAIT)
    stats = json.loads(json.dumps(bus.stats()))
    assert stats["published"] == 4
    assert stats["topics"] == {"job.created": 1, "job.progress": 2, "system.error": 1}
    by_name = {s["name"]: s for s in stats["subscribers"]}
    assert by_name["widget"] == {
        "name": "widget", "pattern": "job.*", "kind": "callback", "maxsize": 1000, "active": True,
        "received": 3, "delivered": 3, "dropped": 0, "errors": 0, "pending": 0,
    }
    assert (by_name["mcp-queue"]["delivered"], by_name["mcp-queue"]["dropped"]) == (4, 3)


def test_close_drains_and_joins_dispatcher_threads():
    before = set(threading.enumerate())
    bus = Bus()
    seen: list[list[int]] = [[] for _ in range(5)]
    for k in range(5):
        bus.subscribe("job.*", seen[k].append, name=f"s{k}")
    assert len(set(threading.enumerate()) - before) == 5
    for i in range(100):
        bus.publish("job.progress", {"i": i})
    bus.close(timeout=WAIT)
    assert set(threading.enumerate()) - before == set()
    assert all(len(s) == 100 for s in seen)
    assert bus.subscriptions == [] and bus.stats()["subscribers"] == []
    bus.publish("job.progress")  # a closed bus still accepts publishes (nobody listens)
    q: queue.Queue = queue.Queue()
    bus.subscribe("job.*", q)  # and new subscriptions
    bus.publish("job.finished")
    assert q.get_nowait().topic == "job.finished"


def test_close_is_bounded_when_a_callback_is_stuck():
    release = threading.Event()
    bus = Bus()
    entered = threading.Event()

    def stuck(event: Event) -> None:
        entered.set()
        release.wait(WAIT)

    sub = bus.subscribe("job.*", stuck)
    bus.publish("job.created")
    assert entered.wait(WAIT)
    bus.close(timeout=0.05, drain=False)  # returns although the callback is still stuck
    assert not release.is_set()
    release.set()
    sub._join(WAIT)


# -- the default bus -------------------------------------------------------------------------------
def test_default_bus_and_module_functions():
    assert events.bus is events.get_bus()
    assert isinstance(events.bus, Bus)
    q: queue.Queue = queue.Queue()
    with events.subscribe("strategy.version.*", q, name="t") as sub:
        assert sub.bus is events.bus
        event = events.publish("strategy.version.saved", {"name": "sma.py", "version": 2}, source="mcp")
        assert q.get_nowait() is event
        assert event.source == "mcp"
    assert events.publish("strategy.version.saved").source == f"kernel:{os.getpid()}"
    from qlm_kernel.events import bus as imported

    assert imported is events.get_bus()
    with pytest.raises(AttributeError):
        _ = events.no_such_thing
