"""The persistent event log: strictly increasing ids, batch appends, topic-pattern tails, pruning."""

from __future__ import annotations

import fnmatch
import threading
import time
from datetime import UTC, datetime

import pytest

from qlm_kernel.errors import ConfigError
from qlm_kernel.store import Store


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "qlm.db") as s:
        yield s


def test_append_batch_returns_last_id_and_tail_follows(store):
    assert store.last_event_id() == 0 and store.append_events([]) == 0
    t = time.time()
    last = store.append_events([{"topic": "job.progress", "payload": {"done": 1}, "source": "opt", "time": t},
                                {"topic": "engine.status", "payload": "idle"},
                                {"topic": "job.done", "payload": None,
                                 "time": datetime(2024, 1, 2, tzinfo=UTC)}])
    assert last == 3 == store.last_event_id()
    events = store.tail_events()
    assert [e["id"] for e in events] == [1, 2, 3]
    assert events[0]["payload"] == {"done": 1} and events[0]["source"] == "opt"
    assert abs(events[0]["time"] - t) < 1e-5 and events[2]["created_at"].startswith("2024-01-02T00:00:00")
    assert [e["id"] for e in store.tail_events(after_id=1)] == [2, 3]
    assert [e["id"] for e in store.tail_events(after_id=0, limit=2)] == [1, 2]


def test_topic_patterns_match_like_fnmatch(store):
    topics = ["job.progress", "job.done", "jobs", "heal.step", "engine.status", "Job.upper"]
    store.append_events([{"topic": t} for t in topics])
    for patterns in (["job.*"], ["heal.*", "engine.?tatus"], "jo[b]*", ["*"], ["nothing.*"]):
        pats = [patterns] if isinstance(patterns, str) else patterns
        expected = [t for t in topics if any(fnmatch.fnmatchcase(t, p) for p in pats)]
        assert [e["topic"] for e in store.tail_events(topics=patterns)] == expected


def test_ids_strictly_increase_under_threads_and_survive_pruning(store):
    def writer(n: int) -> None:
        for i in range(50):
            store.append_events([{"topic": f"w{n}", "payload": i}])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    events = store.tail_events(limit=10_000)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 200
    for n in range(4):
        assert [e["payload"] for e in events if e["topic"] == f"w{n}"] == list(range(50))
    assert store.prune_events(keep_last=10) == 190
    assert [e["id"] for e in store.tail_events()] == ids[-10:]
    assert store.prune_events(keep_last=10) == 0
    assert store.prune_events(keep_last=0) == 10 and store.tail_events() == []
    assert store.append_events([{"topic": "after"}]) == ids[-1] + 1  # never reused


@pytest.mark.parametrize("rows", [[{"payload": 1}], [{"topic": ""}], ["job.x"], [{"topic": "a", "time": "x"}],
                                  [{"topic": "a", "source": 5}]])
def test_bad_events_are_refused_whole(store, rows):
    with pytest.raises(ConfigError):
        store.append_events([{"topic": "ok"}, *rows])
    assert store.last_event_id() == 0
