"""8 threads and 4 processes write runs and events at once: nothing fails, every row arrives intact."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import defaultdict

from qlm_kernel.store import Store

N_ROWS = 300  # runs and events per writer, each in its own small transaction
N_THREADS = 8
N_PROCS = 4

_WRITER = """
import sys
from qlm_kernel.store import Store
path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = Store(path)
for i in range(n):
    store.record_run(strategy=name, params={"i": i}, stats={"writer": name, "i": i}, source="test")
    store.append_events([{"topic": f"w.{name}", "payload": {"writer": name, "i": i}, "source": name}])
store.close()
print("done")
"""


def _write(store: Store, name: str, errors: list) -> None:
    try:
        for i in range(N_ROWS):
            store.record_run(strategy=name, params={"i": i}, stats={"writer": name, "i": i}, source="test")
            store.append_events([{"topic": f"w.{name}", "payload": {"writer": name, "i": i}, "source": name}])
    except BaseException as exc:  # any exception reaching the caller fails the test
        errors.append(exc)


def test_threads_and_processes_write_concurrently(tmp_path):
    path = tmp_path / "qlm.db"
    store = Store(path)
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), f"p{n}", str(N_ROWS)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in range(N_PROCS)]
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_write, args=(store, f"t{n}", errors)) for n in range(N_THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert errors == []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0 and out.strip() == "done", err[-2000:]

    writers = [f"t{n}" for n in range(N_THREADS)] + [f"p{n}" for n in range(N_PROCS)]
    runs = store.list_runs(limit=100_000)
    assert len(runs) == len(writers) * N_ROWS
    by_writer = defaultdict(list)
    for run in reversed(runs):  # oldest first
        assert run["status"] == "ok" and run["stats"]["writer"] == run["strategy"]
        assert run["params"] == {"i": run["stats"]["i"]}
        by_writer[run["strategy"]].append(run["stats"]["i"])
    assert {w: by_writer[w] for w in writers} == {w: list(range(N_ROWS)) for w in writers}

    events = store.tail_events(limit=100_000)
    ids = [e["id"] for e in events]
    assert len(events) == len(writers) * N_ROWS and ids == sorted(set(ids))
    seen = defaultdict(list)
    for event in events:
        assert event["topic"] == f"w.{event['source']}" and event["payload"]["writer"] == event["source"]
        seen[event["source"]].append(event["payload"]["i"])
    assert {w: seen[w] for w in writers} == {w: list(range(N_ROWS)) for w in writers}  # in order per writer
    assert store.integrity_check() == "ok"
    store.close()


_OPENER = """
import sys
from qlm_kernel.store import Store
with Store(sys.argv[1]) as store:
    store.record_run(strategy=sys.argv[2])
    print(store.schema_version)
"""


def test_processes_racing_to_create_a_fresh_database(tmp_path):
    path = tmp_path / "fresh" / "qlm.db"
    procs = [subprocess.Popen([sys.executable, "-c", _OPENER, str(path), f"p{n}"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
    with Store(path) as store:
        assert {out.strip() for out, _ in outputs} == {str(store.schema_version)}
        assert sorted(r["strategy"] for r in store.list_runs()) == [f"p{n}" for n in range(4)]
        assert store.integrity_check() == "ok"


def test_a_migration_committed_between_the_header_reads_does_not_look_foreign(tmp_path, monkeypatch):
    """The interleaving behind a rare CI failure, made certain: another process's first migration
    commits right after this opener read "schema version 0". The opener's reads share one snapshot,
    so it still sees an empty file (then finds the migration done), not "tables but no version"."""
    import sqlite3

    from qlm_kernel.store import migrations as mig

    path = tmp_path / "qlm.db"
    first = sqlite3.connect(path)  # an empty WAL file, as the racing openers find it once one enabled WAL
    first.execute("PRAGMA journal_mode = WAL")
    first.close()
    real = mig.user_version
    done = []

    def version_then_other_process_migrates(conn):
        version = real(conn)
        if not done:
            done.append(True)
            other = sqlite3.connect(path, isolation_level=None)
            mig.migrate_connection(other)
            other.close()
        return version

    monkeypatch.setattr(mig, "user_version", version_then_other_process_migrates)
    with Store(path) as store:
        assert done and store.schema_version == mig.MIGRATIONS[-1].version
        store.record_run(strategy="after the race")
        assert [r["strategy"] for r in store.list_runs()] == ["after the race"]
