"""Environment failures become clear QLMSystemErrors and never damage the file.

Read-only: tests run as root in CI, where chmod does not stop root. So the read-only path is
exercised three ways: SQLite's own read-only open (``Store(readonly=True)``: ``mode=ro`` URI plus
``PRAGMA query_only``), ``PRAGMA query_only`` alone, and a real ``chmod`` seen by a child process
that runs without CAP_DAC_OVERRIDE (``setpriv --bounding-set``; directly when not root). The store
never consults ``os.access``: whatever SQLite reports decides.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from qlm_kernel.errors import QLMSystemError
from qlm_kernel.store import Store
from qlm_kernel.store.errors import error_code, map_error


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(path) -> dict[str, str]:
    return {p.name: _sha(p) for p in sorted(path.parent.iterdir()) if p.name.startswith(path.name)}


@pytest.fixture
def filled(tmp_path):
    """A closed store file (WAL checkpointed away) holding two runs."""
    path = tmp_path / "qlm.db"
    with Store(path) as store:
        store.record_run(strategy="a.py", stats={"sharpe": 1.0})
        store.record_run(strategy="b.py")
    assert not (tmp_path / "qlm.db-wal").exists()
    return path


WRITES = [
    lambda s: s.record_run(strategy="c.py"),
    lambda s: s.save_strategy_version("c.py", "x"),
    lambda s: s.create_job("grid"),
    lambda s: s.append_events([{"topic": "a"}]),
    lambda s: s.set_config("k", 1),
    lambda s: s.record_dataset({"name": "d"}),
    lambda s: s.prune_events(0),
]


@pytest.mark.parametrize("how", ["readonly", "query_only"])
def test_read_only_store_reads_and_refuses_writes_untouched(filled, how):
    before = _sha(filled)
    opts = {"readonly": True} if how == "readonly" else {"pragmas": {"query_only": "ON"}}
    with Store(filled, **opts) as store:
        assert sorted(r["strategy"] for r in store.list_runs()) == ["a.py", "b.py"]
        assert store.integrity_check() == "ok" and store.stats()["tables"]["runs"] == 2
        for write in WRITES:
            with pytest.raises(QLMSystemError) as info:
                write(store)
            err = info.value
            assert err.code == "DB_READONLY" and err.hint
            assert err.context["path"] == str(filled) and err.context["operation"]
        assert len(store.list_runs()) == 2
    assert _sha(filled) == before


def test_read_only_open_cannot_create_or_migrate(tmp_path):
    with pytest.raises(QLMSystemError) as info:
        Store(tmp_path / "missing.db", readonly=True)
    assert info.value.code == "DB_CANTOPEN" and not (tmp_path / "missing.db").exists()
    old = tmp_path / "old.db"
    sqlite3.connect(old).close()  # an empty file: schema version 0
    with pytest.raises(QLMSystemError) as info:
        Store(old, readonly=True)
    assert info.value.code == "DB_READONLY" and "migrat" in info.value.message


_CHILD = """
import json, sys
from qlm_kernel.errors import QLMSystemError
from qlm_kernel.store import Store
out = {}
try:
    store = Store(sys.argv[1])
except QLMSystemError as exc:
    out["open"] = exc.code
else:
    out["runs"] = sorted(r["strategy"] for r in store.list_runs())
    try:
        store.record_run(strategy="c.py")
        out["write"] = "ok"
    except QLMSystemError as exc:
        out["write"] = exc.code
    store.close()
print(json.dumps(out))
"""


def _unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return [sys.executable]
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop CAP_DAC_OVERRIDE")
    cmd = [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner", sys.executable]
    probe = subprocess.run([*cmd, "-c", "pass"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot drop capabilities here: {probe.stderr[-200:]!r}")
    return cmd


@pytest.mark.parametrize("dir_mode", [0o755, 0o555])
def test_chmod_read_only_file_and_directory(filled, dir_mode):
    cmd = _unprivileged()
    before = _sha(filled)
    filled.chmod(0o444)
    filled.parent.chmod(dir_mode)
    try:
        done = subprocess.run([*cmd, "-c", _CHILD, str(filled)], capture_output=True, text=True, timeout=60)
    finally:
        filled.parent.chmod(0o755)
        filled.chmod(0o644)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    if dir_mode == 0o755:  # file read-only: reads work, the write is refused
        assert result == {"runs": ["a.py", "b.py"], "write": "DB_READONLY"}
    else:  # no -wal/-shm can be created: SQLite refuses even to read a WAL file; clearly reported
        assert result == {"open": "DB_READONLY"}
    assert _sha(filled) == before


def test_full_disk_is_db_full_and_keeps_earlier_rows(filled):
    pages = sqlite3.connect(filled).execute("PRAGMA page_count").fetchone()[0]
    with Store(filled, pragmas={"max_page_count": pages + 4}) as store:
        written = 0
        with pytest.raises(QLMSystemError) as info:
            for i in range(100):
                store.record_run(strategy="big.py", stats={"pad": "x" * 4000, "i": i})
                written += 1
        err = info.value
        assert err.code == "DB_FULL" and err.hint and err.context["operation"] == "record run"
        assert written < 100 and len(store.list_runs(limit=1000)) == 2 + written  # reads still work
        assert store.integrity_check() == "ok"
    with Store(filled) as store:
        runs = store.list_runs(limit=1000)
        assert [r["strategy"] for r in runs[-2:]] == ["b.py", "a.py"] and runs[-1]["stats"] == {"sharpe": 1.0}
        assert [r["stats"]["i"] for r in runs[:-2]] == list(range(written))[::-1]
        assert store.integrity_check() == "ok"


@pytest.mark.parametrize("content", [os.urandom(8192), b"name,price\nEURUSD,1.1\n" * 50, b"hello\n"])
def test_garbage_file_is_db_corrupt_and_never_touched(tmp_path, content):
    path = tmp_path / "qlm.db"
    path.write_bytes(content)
    before = _files(path)
    with pytest.raises(QLMSystemError) as info:
        Store(path)
    err = info.value
    assert err.code == "DB_CORRUPT" and err.hint and err.context["path"] == str(path)
    assert isinstance(err.__cause__, sqlite3.DatabaseError)
    assert _files(path) == before  # same bytes, and no -wal/-shm left behind


def test_damaged_page_is_reported(tmp_path):
    path = tmp_path / "qlm.db"
    with Store(path) as store:
        for i in range(300):
            store.record_run(strategy="s.py", stats={"marker": f"MARKER-{i:04d}", "pad": "y" * 200})
    data = path.read_bytes()
    page_size = 4096
    page = data.index(b"MARKER-0150") // page_size  # a leaf page of the runs table
    with path.open("r+b") as fh:
        fh.seek(page * page_size)
        fh.write(os.urandom(page_size))
    with Store(path) as store:  # the header is fine, so it opens...
        report = store.integrity_check()
        assert report != "ok" and report  # ...but the check names the damage
        with pytest.raises(QLMSystemError) as info:
            store.list_runs(limit=1000)
        assert info.value.code == "DB_CORRUPT" and info.value.context["operation"] == "list runs"


def test_lock_held_too_long_is_db_busy(tmp_path):
    path = tmp_path / "qlm.db"
    Store(path).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with Store(path, busy_timeout=0.1, retries=2) as store:
            started = time.monotonic()
            with pytest.raises(QLMSystemError) as info:
                store.record_run(strategy="s.py")
            err = info.value
            assert err.code == "DB_BUSY" and err.hint and err.context["attempts"] == 3
            assert time.monotonic() - started >= 0.3
            assert store.list_runs() == []  # reads are not blocked by the writer in WAL mode
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_a_lock_released_during_retries_is_waited_out(tmp_path):
    path = tmp_path / "qlm.db"
    Store(path).close()
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: blocker.execute("ROLLBACK"))
    release.start()
    try:
        with Store(path, busy_timeout=0.1, retries=10) as store:  # 0.1 s busy timeout, then backoff
            rid = store.record_run(strategy="s.py")
            assert store.get_run(rid)["strategy"] == "s.py"
    finally:
        release.join()
        blocker.close()


def test_every_sqlite_error_maps_to_a_code(tmp_path):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x INTEGER NOT NULL)")
    with pytest.raises(sqlite3.IntegrityError) as integrity:
        conn.execute("INSERT INTO t VALUES (NULL)")
    with pytest.raises(sqlite3.OperationalError) as syntax:
        conn.execute("NOT SQL")
    conn.close()
    with pytest.raises(sqlite3.ProgrammingError) as closed:
        conn.execute("SELECT 1")
    assert error_code(integrity.value) == "DB_CONSTRAINT"
    assert error_code(syntax.value) == "DB_ERROR"
    assert error_code(closed.value) == "DB_CLOSED"
    assert error_code(sqlite3.OperationalError("database is locked")) == "DB_BUSY"
    err = map_error(syntax.value, op="probe", path=tmp_path / "x.db")
    assert isinstance(err, QLMSystemError) and err.hint and err.to_dict()["context"]["operation"] == "probe"


def test_directory_as_path_is_cantopen(tmp_path):
    with pytest.raises(QLMSystemError) as info:
        Store(tmp_path)
    assert info.value.code == "DB_CANTOPEN"
