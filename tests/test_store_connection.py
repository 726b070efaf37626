"""Connections: one per thread with QLM's pragmas, pooled, closed together, fork-safe; default_store."""

from __future__ import annotations

import os
import pickle
import sys
import threading

import pytest

from qlm_kernel.errors import QLMSystemError
from qlm_kernel.store import Store, close_default_store, default_store


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "qlm.db") as s:
        yield s


def _conn(store):
    return store._pool.connection()  # internal: the calling thread's connection


def test_pragmas_of_every_connection(store):
    seen = []

    def probe() -> None:
        c = _conn(store)
        seen.append(tuple(c.execute(f"PRAGMA {p}").fetchone()[0]
                          for p in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")))

    probe()
    th = threading.Thread(target=probe)
    th.start()
    th.join()
    assert seen == [("wal", 10_000, 2, 1)] * 2  # synchronous 2 == FULL


def test_threads_get_distinct_connections_and_close_closes_all(store):
    barrier = threading.Barrier(4)
    conns = {}

    def worker(n: int) -> None:
        conns[n] = _conn(store)
        store.record_run(strategy=f"t{n}")
        assert _conn(store) is conns[n]  # stable within a thread
        barrier.wait()  # keep all three alive at once
        barrier.wait()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for th in threads:
        th.start()
    barrier.wait()
    main = _conn(store)
    assert len({id(c) for c in conns.values()} | {id(main)}) == 4
    assert store._pool.open_count() == 4
    barrier.wait()
    for th in threads:
        th.join()
    store.close()
    assert store.closed
    for c in [*conns.values(), main]:
        with pytest.raises(Exception, match="closed"):
            c.execute("SELECT 1")
    with pytest.raises(QLMSystemError) as info:
        store.list_runs()
    assert info.value.code == "DB_CLOSED" and info.value.hint
    store.close()  # idempotent


def test_finished_threads_return_connections_to_a_small_pool(store):
    main = _conn(store)
    for _ in range(20):  # sequential short-lived threads reuse pooled connections
        th = threading.Thread(target=store.list_runs)
        th.start()
        th.join()
    assert store._pool.open_count() <= 1 + store._pool.max_idle
    assert _conn(store) is main


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_opens_its_own_connection(store):
    parent_conn = _conn(store)
    store.record_run(strategy="parent")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's connection
        try:
            child_conn = _conn(store)
            store.record_run(strategy="child")
            ok = child_conn is not parent_conn and len(store.list_runs()) == 2
            os.write(write, b"ok" if ok else b"bad")
            store.close()  # abandons, never closes, inherited connections
        except BaseException as exc:  # pragma: no cover - reported to the parent
            os.write(write, repr(exc).encode()[:200])
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 300) == b"ok"
    os.close(read)
    assert _conn(store) is parent_conn  # the parent's connection still works
    assert sorted(r["strategy"] for r in store.list_runs()) == ["child", "parent"]
    assert store.integrity_check() == "ok"


def test_store_pickles_as_reopen(store):
    clone = pickle.loads(pickle.dumps(store))
    try:
        assert clone is not store and clone.path == store.path
        rid = clone.record_run(strategy="x")
        assert store.get_run(rid)["strategy"] == "x"
    finally:
        clone.close()


def test_default_store_follows_qlm_home(tmp_path, monkeypatch):
    monkeypatch.setenv("QLM_HOME", str(tmp_path / "a"))
    try:
        first = default_store()
        assert first is default_store() and first.path == (tmp_path / "a" / "qlm.db").resolve()
        monkeypatch.setenv("QLM_HOME", str(tmp_path / "b"))
        second = default_store()
        assert second is not first and first.closed and second.path.parent == (tmp_path / "b").resolve()
        second.close()
        third = default_store()
        assert third is not second and not third.closed
    finally:
        close_default_store()


def test_stats_and_integrity(store):
    store.record_run(strategy="s")
    store.append_events([{"topic": "a"}] * 3)
    stats = store.stats()
    assert stats["path"] == str(store.path) and stats["size_bytes"] > 0 and stats["wal_bytes"] > 0
    assert stats["tables"]["runs"] == 1 and stats["tables"]["events"] == 3 and stats["tables"]["jobs"] == 0
    assert stats["schema_version"] == store.schema_version and stats["journal_mode"] == "wal"
    assert store.integrity_check() == "ok"
    assert store.checkpoint("TRUNCATE")["busy"] == 0 and store.stats()["wal_bytes"] == 0
    assert "readonly" not in repr(store) and sys.getrefcount(store) > 0


def test_forgotten_stores_do_not_leak_file_descriptors(tmp_path):
    import gc

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc")
    Store(tmp_path / "qlm.db").close()
    gc.collect()
    before = open_fds()
    for n in range(50):
        Store(tmp_path / "qlm.db").record_run(strategy=f"s{n}")  # never closed
    gc.collect()
    assert open_fds() <= before + 3
