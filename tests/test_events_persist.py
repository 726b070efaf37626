"""`EventRecorder` with real sinks: an in-memory list and a small SQLite file written by the test itself."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from qlm_kernel.errors import ConfigError
from qlm_kernel.events import Bus, EventRecorder

WAIT = 10.0


@pytest.fixture
def bus():
    before = set(threading.enumerate())
    b = Bus(source="test")
    yield b
    b.close(timeout=WAIT)
    assert [t for t in threading.enumerate() if t not in before] == []


class ListSink:
    """Collects batches; sets ``reached`` once ``expect`` rows have arrived."""

    def __init__(self, expect: int = -1) -> None:
        self.batches: list[list[dict]] = []
        self.expect = expect
        self.reached = threading.Event()
        self.threads: set[str] = set()

    def __call__(self, rows: list[dict]) -> None:
        self.threads.add(threading.current_thread().name)
        self.batches.append(rows)
        if sum(map(len, self.batches)) >= self.expect >= 0:
            self.reached.set()

    @property
    def rows(self) -> list[dict]:
        return [row for batch in self.batches for row in batch]


class SqliteSink:
    """A tiny events table, one transaction per batch (all-or-nothing, as the recorder expects)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        with sqlite3.connect(path) as conn:
            conn.execute(
                "CREATE TABLE events (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload TEXT NOT NULL,"
                " time REAL NOT NULL, source TEXT NOT NULL)"
            )
        conn.close()

    def __call__(self, rows: list[dict]) -> None:
        if self._conn is None:  # opened in the writer thread, which is the only caller
            self._conn = sqlite3.connect(self.path, check_same_thread=False)  # closed by the test
            self._conn.execute("PRAGMA journal_mode=WAL")
        with self._conn:
            self._conn.executemany(
                "INSERT INTO events (seq, topic, payload, time, source) VALUES (?, ?, ?, ?, ?)",
                [(r["seq"], r["topic"], json.dumps(r["payload"]), r["time"], r["source"]) for r in rows],
            )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def test_full_batches_are_written_without_waiting_for_the_interval(bus):
    sink = ListSink(expect=1000)
    rec = EventRecorder(bus, sink, batch_size=100, flush_interval=60.0)
    sent = [bus.publish("job.progress", {"i": i}).seq for i in range(1000)]
    assert sink.reached.wait(WAIT)
    assert [len(b) for b in sink.batches] == [100] * 10
    assert [r["seq"] for r in sink.rows] == sent
    assert sink.threads == {"qlm-events-recorder"}  # written off the publisher's thread
    rec.close()
    assert (rec.written, rec.batches, rec.dropped, rec.errors, rec.pending) == (1000, 10, 0, 0, 0)


def test_partial_batch_is_written_after_the_interval(bus):
    sink = ListSink(expect=7)
    rec = EventRecorder(bus, sink, batch_size=500, flush_interval=0.05)
    for i in range(7):
        bus.publish("heal.step", {"i": i})
    assert sink.reached.wait(WAIT)  # no close, no flush: the interval elapsed
    assert [r["payload"]["i"] for r in sink.rows] == list(range(7))
    rec.close()


def test_close_writes_everything_left(bus):
    sink = ListSink()
    rec = EventRecorder(bus, sink, batch_size=500, flush_interval=60.0)
    for i in range(1234):
        bus.publish("job.progress", {"i": i})
    rec.close()
    assert [r["payload"]["i"] for r in sink.rows] == list(range(1234))
    assert sum(len(b) for b in sink.batches) == 1234 and all(len(b) <= 500 for b in sink.batches)
    assert not rec._thread.is_alive() and not rec.subscription.active
    bus.publish("job.progress", {"i": -1})  # after close nothing more is recorded
    assert len(sink.rows) == 1234
    rec.close()  # idempotent


def test_flush_writes_now(bus):
    sink = ListSink()
    rec = EventRecorder(bus, sink, batch_size=500, flush_interval=60.0)
    bus.publish("job.created")
    bus.publish("job.finished")
    assert rec.flush(WAIT)
    assert [r["topic"] for r in sink.rows] == ["job.created", "job.finished"]
    assert rec.flush(WAIT)  # nothing pending: returns at once
    rec.close()


def test_pattern_filters_what_is_recorded(bus):
    sink = ListSink()
    rec = EventRecorder(bus, sink, pattern="job.*")
    bus.publish("job.created")
    bus.publish("heal.step")
    bus.publish("job.finished")
    rec.close()
    assert [r["topic"] for r in sink.rows] == ["job.created", "job.finished"]


def test_many_publisher_threads_into_sqlite_in_seq_order(bus, tmp_path):
    sink = SqliteSink(tmp_path / "events.db")
    seen_batches: list[list[int]] = []

    def sink_and_note(rows: list[dict]) -> None:
        seen_batches.append([r["seq"] for r in rows])
        sink(rows)

    n_threads, per_thread = 6, 2000
    # room for the whole burst: six threads outpace a SQLite commit per batch (the bound is tested below)
    rec = EventRecorder(bus, sink_and_note, batch_size=250, flush_interval=0.02, max_buffered=12_000)
    barrier = threading.Barrier(n_threads)

    def publisher(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            bus.publish("job.progress", {"thread": t, "i": i, "best": 1.5})

    threads = [threading.Thread(target=publisher, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.close()
    sink.close()
    for batch in seen_batches:
        assert batch == sorted(batch)  # in seq order within every batch ...
    flat = [s for b in seen_batches for s in b]
    assert flat == sorted(flat)  # ... and across batches
    with sqlite3.connect(tmp_path / "events.db") as conn:
        rows = conn.execute("SELECT seq, topic, payload, source FROM events ORDER BY seq").fetchall()
    conn.close()
    assert len(rows) == n_threads * per_thread == rec.written
    payloads = [json.loads(p) for _, _, p, _ in rows]
    expected = {(t, i) for t in range(n_threads) for i in range(per_thread)}
    assert {(p["thread"], p["i"]) for p in payloads} == expected
    assert {r[1] for r in rows} == {"job.progress"} and {r[3] for r in rows} == {"test"}
    assert rec.dropped == 0 and rec.errors == 0


def test_failing_sink_is_retried_and_logged(bus, caplog):
    good = ListSink()
    failures = []

    def flaky(rows: list[dict]) -> None:
        if len(failures) < 3:
            failures.append(len(rows))
            raise sqlite3.OperationalError("database is locked")
        good(rows)

    with caplog.at_level(logging.ERROR, logger="qlm_kernel.events"):
        rec = EventRecorder(bus, flaky, batch_size=50, flush_interval=0.01)
        for i in range(120):
            bus.publish("job.progress", {"i": i})
        assert rec.flush(WAIT)
        rec.close()
    assert [r["payload"]["i"] for r in good.rows] == list(range(120))  # nothing lost, order kept
    assert rec.errors == 3 and rec.dropped == 0
    assert sum("event sink" in r.getMessage() for r in caplog.records) == 3


def test_stuck_sink_never_blocks_publishers_and_buffer_stays_bounded(bus):
    release, entered = threading.Event(), threading.Event()
    sink = ListSink()

    def stuck(rows: list[dict]) -> None:
        entered.set()
        release.wait(WAIT)
        sink(rows)

    rec = EventRecorder(bus, stuck, batch_size=10, flush_interval=0.01, max_buffered=100)
    bus.publish("job.progress", {"i": 0})
    assert entered.wait(WAIT)  # the writer is stuck inside the sink with a batch of 1
    for i in range(1, 5000):
        bus.publish("job.progress", {"i": i})
    assert not release.is_set()  # every publish returned while the sink was stuck
    assert rec.pending == 100 and rec.dropped == 4999 - 100
    release.set()
    rec.close()
    assert rec.written == 101 and rec.written + rec.dropped == 5000
    assert [r["payload"]["i"] for r in sink.rows] == [0, *range(4900, 5000)]  # the newest were kept


def test_sink_that_always_fails_drops_with_a_count_and_close_is_bounded(bus, caplog):
    calls = []

    def broken(rows: list[dict]) -> None:
        calls.append(len(rows))
        raise OSError("disk full")

    with caplog.at_level(logging.CRITICAL, logger="qlm_kernel.events"):
        rec = EventRecorder(
            bus, broken, batch_size=20, flush_interval=0.01, max_buffered=200, max_backoff=0.05
        )
        for i in range(1000):
            bus.publish("job.progress", {"i": i})
        assert rec.pending <= 200
        t0 = time.monotonic()
        rec.close(timeout=0.3)
        closing = time.monotonic() - t0
    assert not rec._thread.is_alive()
    assert rec.written == 0 and rec.dropped == 1000 and rec.errors == len(calls) >= 1
    assert closing < 0.3 + 1.0 + WAIT  # bounded (the real bound is timeout + one sink call)
    assert rec.stats() == {
        "received": 1000, "written": 0, "batches": 0, "errors": len(calls), "dropped": 1000, "pending": 0,
        "closed": True,
    }


@pytest.mark.parametrize(
    "kwargs", [{"sink": 42}, {"batch_size": 0}, {"flush_interval": 0}, {"batch_size": 1.5}]
)
def test_bad_arguments(bus, kwargs):
    args = {"sink": lambda rows: None} | kwargs
    sink = args.pop("sink")
    with pytest.raises(ConfigError):
        EventRecorder(bus, sink, **args)
    assert bus.subscriptions == []


def test_bad_pattern_starts_no_thread(bus):
    with pytest.raises(ConfigError):
        EventRecorder(bus, lambda rows: None, pattern="Job.*")
    with pytest.raises(ConfigError):
        EventRecorder(bus, lambda rows: None, max_buffered=0)


def test_rows_the_sink_refuses_are_dropped_alone(bus, caplog):
    good = ListSink()

    def picky(rows: list[dict]) -> None:
        if any(r["payload"]["bad"] for r in rows):
            raise ConfigError("event row refused")  # what a store raises for data it will never accept
        good(rows)

    with caplog.at_level(logging.ERROR, logger="qlm_kernel.events"):
        rec = EventRecorder(bus, picky, batch_size=10, flush_interval=60.0)
        for i in range(25):
            bus.publish("job.progress", {"i": i, "bad": i == 13})
        rec.close()
    assert [r["payload"]["i"] for r in good.rows] == [i for i in range(25) if i != 13]
    assert (rec.written, rec.dropped, rec.errors) == (24, 1, 1)
    assert any("refused event job.progress" in r.getMessage() for r in caplog.records)


def test_the_workspace_recorder_keeps_writing_after_the_shared_store_is_closed(home):
    """`close_default_store()` (a test switching workspaces, a maintenance step) closes the Store object
    the recorder used to be bound to: the next events go to the store as it is now, none dropped."""
    from qlm_kernel.events import publish
    from qlm_kernel.store import close_default_store, default_store
    from qlm_kernel.workspace import ensure_event_recorder

    recorder = ensure_event_recorder()
    publish("test.recorder.before", {"n": 1})
    assert recorder.flush(WAIT)
    close_default_store()
    publish("test.recorder.after", {"n": 2})
    started = time.monotonic()
    assert recorder.flush(WAIT)
    assert time.monotonic() - started < 2.0  # written at once, not after a failing sink's retry window
    topics = [e["topic"] for e in default_store().tail_events(0)]
    assert "test.recorder.before" in topics and "test.recorder.after" in topics
    assert recorder.stats()["dropped"] == 0 and recorder.stats()["errors"] == 0


def test_events_recorded_for_a_workspace_land_in_it_after_qlm_home_moves(home, tmp_path, monkeypatch):
    """A batch flushed after ``QLM_HOME`` moved still goes to the workspace it was recorded for, and
    the writer leaves alone the shared store that now serves the other workspace."""
    from qlm_kernel.events import publish
    from qlm_kernel.store import Store, default_store
    from qlm_kernel.workspace import ensure_event_recorder

    recorder = ensure_event_recorder()
    first = default_store()
    publish("test.recorder.first", {"n": 1})
    assert recorder.flush(WAIT)
    monkeypatch.setenv("QLM_HOME", str(tmp_path / "other"))
    second = default_store()  # the shared store now serves the other workspace
    publish("test.recorder.late", {"n": 2})  # the first workspace's writer is still the one running
    assert recorder.flush(WAIT)
    assert not second.closed and default_store() is second
    assert [e["topic"] for e in second.tail_events(0)] == []
    with Store(first.path) as mine:
        topics = [e["topic"] for e in mine.tail_events(0)]
    assert "test.recorder.first" in topics and "test.recorder.late" in topics
    assert recorder.stats()["dropped"] == 0 and recorder.stats()["errors"] == 0
