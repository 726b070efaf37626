"""Jobs are owned and reaped: real optimization subprocesses killed with SIGKILL become ``abandoned``
and resume; a job that beats without progress is never reaped; a stopped (silent) owner is; pools reap
their workers' jobs by pid from any thread; an old database upgrades in place to the new status."""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qlm_kernel import session
from qlm_kernel.errors import ConfigError, OptimizationError
from qlm_kernel.events import subscribe
from qlm_kernel.optimization import job as job_module
from qlm_kernel.optimization import optimize
from qlm_kernel.optimization.runner import _batch
from qlm_kernel.session.jobs import reap_jobs
from qlm_kernel.store import MIGRATIONS, SCHEMA_VERSION, Store, close_default_store, default_store, heartbeat
from qlm_kernel.store.jobs import HOST
from qlm_kernel.store.migrations import migrate_connection

NAPPER = """
import time
from qlm_kernel import Param, Signals, Strategy
from qlm_kernel import indicators as ta


class Napper(Strategy):
    fast = Param(5, min=2, max=40)
    slow = Param(30, min=20, max=80)
    nap = {nap}

    def signals(self, data):
        time.sleep(self.nap)
        close = data["close"]
        f, s = ta.sma(close, self.fast), ta.sma(close, self.slow)
        return Signals(entry_long=ta.crossed_above(f, s), exit_long=ta.crossed_below(f, s))
"""
SAMPLE = {"kind": "synthetic", "n": 2000, "seed": 7}
SPACE = {"fast": [2, 3, 4, 5, 6, 7, 8, 9], "slow": [20, 30, 40]}  # 24 trials


def write_strategy(folder: Path, nap: float) -> str:
    """A strategy file whose every trial sleeps ``nap`` seconds (no progress meanwhile)."""
    path = folder / f"napper_{str(nap).replace('.', '_')}.py"
    path.write_text(NAPPER.format(nap=nap))
    return str(path)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    """A real process that does nothing (an owner that is alive)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait(timeout=30)


def start_job(home: Path, strategy: str, **env: str) -> subprocess.Popen:
    """``qlm.optimize`` in a real subprocess on the workspace ``home`` (one trial per batch)."""
    code = textwrap.dedent(f"""
        from qlm_kernel.optimization import optimize
        optimize({strategy!r}, sample={SAMPLE!r}, space={SPACE!r}, n_jobs=1, batch_size=1)
    """)
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "QLM_HOME": str(home), **env})


def wait_for(what: str, check, proc: subprocess.Popen | None = None, timeout: float = 90.0):
    """Poll ``check()`` until it returns something truthy (the subprocess must stay alive meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None:
            assert proc.poll() is None, f"the job subprocess ended before {what}"
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def only_job(path: Path) -> dict | None:
    """The one job of the database at ``path`` (read-only, never reaping), or None."""
    if not path.is_file():
        return None
    try:
        with Store(path, readonly=True) as store:
            jobs = store.list_jobs()
    except Exception:  # the writer may still be creating the schema
        return None
    return jobs[0] if jobs else None


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_a_killed_job_is_abandoned_when_the_store_opens_and_resumes(home: Path, tmp_path: Path) -> None:
    strategy = write_strategy(tmp_path, 0.05)
    db = home / "qlm.db"
    proc = start_job(home, strategy)
    try:
        job = wait_for("4 stored trials", lambda: (j := only_job(db)) and j["done"] >= 4 and j, proc)
        with Store(db) as store:  # another process opening while the owner lives: nothing happens
            assert store.get_job(job["id"])["status"] == "running"
            assert store.get_job(job["id"])["host"] == HOST and job["pid"] == proc.pid
    finally:
        kill(proc)
    with Store(db) as store:  # the next process to open the store marks it
        stored = store.get_job(job["id"])
        events = store.tail_events(topics="job.failed")
    assert stored["status"] == "abandoned" and stored["finished_at"]
    assert stored["error"]["code"] == "JOB_ABANDONED" and f"process {proc.pid}" in stored["error"]["message"]
    assert "qlm.optimize.resume" in stored["error"]["hint"]
    assert [e["payload"]["status"] for e in events if e["payload"]["job_id"] == job["id"]] == ["abandoned"]
    trials_before = len(default_store().list_trials(job["id"]))
    view = session.get_job(job["id"], 0)
    assert view["status"] == "abandoned" and view["resumable"] is True and view["stale"] is False
    assert [j["id"] for j in session.list_jobs(status="abandoned")] == [job["id"]]
    resumed = session.resume_job(job["id"], n_jobs=1)
    assert resumed.status == "done" and resumed.job_id == job["id"] and len(resumed.rows) == 24
    assert resumed.n_computed == 24 - trials_before  # the stored trials were kept, not recomputed
    final = default_store().get_job(job["id"])
    assert final["status"] == "done" and final["error"] is None and final["pid"] == os.getpid()


def test_listing_reaps_a_killed_job_and_announces_it_on_the_bus(home: Path, tmp_path: Path) -> None:
    strategy = write_strategy(tmp_path, 0.05)
    store = default_store()  # open before the job exists: its own open reaps nothing later
    proc = start_job(home, strategy)
    try:
        job = wait_for("a running job", lambda: (j := store.list_jobs()) and j[0]["done"] >= 2 and j[0], proc)
    finally:
        kill(proc)
    seen: queue.Queue = queue.Queue()
    sub = subscribe("job.*", seen)
    try:
        jobs = session.list_jobs()
        again = session.get_job(job["id"], 0)
    finally:
        sub.unsubscribe()
    assert [(j["id"], j["status"]) for j in jobs] == [(job["id"], "abandoned")]
    assert again["status"] == "abandoned" and again["resumable"] is True
    events = [seen.get_nowait() for _ in range(seen.qsize())]
    assert [(e.topic, e.payload["job_id"], e.payload["status"]) for e in events] == [
        ("job.failed", job["id"], "abandoned")]  # announced once
    assert events[0].payload["error"]["code"] == "JOB_ABANDONED"


def test_a_job_that_beats_without_progress_is_not_reaped_but_a_silent_one_is(home: Path,
                                                                             tmp_path: Path) -> None:
    strategy = write_strategy(tmp_path, 3.0)  # each trial: 3 s without progress
    db = home / "qlm.db"
    proc = start_job(home, strategy, QLM_JOB_HEARTBEAT_SECONDS="0.2")
    try:
        job = wait_for("the running job",
                       lambda: (j := only_job(db)) and j["status"] == "running" and j, proc)
        store = default_store()
        started = time.monotonic()
        while time.monotonic() - started < 2.5:  # no progress for longer than the 1 s threshold ...
            assert reap_jobs(stale_after=1.0) == []
            assert store.reap_jobs(stale_after=1.0) == []
            time.sleep(0.1)
        current = store.get_job(job["id"])
        assert current["status"] == "running" and current["done"] == 0  # ... and still no progress
        assert time.time() - current["heartbeat"] < 1.0  # but it beats
        with pytest.raises(OptimizationError) as info:  # a live job cannot be resumed twice
            optimize(strategy, sample=SAMPLE, space=SPACE, resume=job["id"])
        assert info.value.code == "JOB_RUNNING"
        proc.send_signal(signal.SIGSTOP)  # alive but silent: no more beats
        time.sleep(1.5)
        assert reap_jobs(stale_after=1.0) == [job["id"]]
        reaped = store.get_job(job["id"])
        assert reaped["status"] == "abandoned" and "no heartbeat" in reaped["error"]["message"]
    finally:
        proc.send_signal(signal.SIGCONT)
        kill(proc)


def test_reap_jobs_by_owner_pid_from_many_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  sleeper: subprocess.Popen) -> None:
    monkeypatch.setenv("QLM_HOME", str(tmp_path / "home"))
    close_default_store()
    try:
        store = default_store()
        mine = [store.create_job("optimize", pid=sleeper.pid) for _ in range(6)]
        for jid in mine[:3]:
            store.update_job(jid, status="running", pid=sleeper.pid)
        other_host = store.create_job("optimize", pid=sleeper.pid, host="another-machine")
        other_pid = store.create_job("optimize")  # this process: alive and fresh
        finished = store.create_job("optimize", pid=sleeper.pid)
        store.finish_job(finished, "done")
        seen: queue.Queue = queue.Queue()
        sub = subscribe("job.cancelled", seen)
        results: list[list[str]] = []
        threads = [threading.Thread(target=lambda: results.append(
            reap_jobs([sleeper.pid], status="cancelled"))) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sub.unsubscribe()
        reaped = [jid for batch in results for jid in batch]
        assert sorted(reaped) == sorted(mine)  # each job exactly once across the threads
        for jid in mine:
            job = store.get_job(jid)
            assert job["status"] == "cancelled" and job["error"]["code"] == "JOB_REAPED"
        assert {store.get_job(j)["status"] for j in (other_host, other_pid)} == {"pending"}
        assert store.get_job(finished)["status"] == "done"
        announced = []
        while not seen.empty():
            announced.append(seen.get_nowait().payload["job_id"])
        assert sorted(announced) == sorted(mine)
        assert reap_jobs() == []  # the sleeper lives and everything is fresh
        with pytest.raises(ConfigError) as info:
            reap_jobs([sleeper.pid], status="done")
        assert info.value.code == "BAD_ARGUMENT"
    finally:
        close_default_store()


def test_an_interrupted_search_stops_beating_and_goes_stale(home: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A search interrupted without finishing its job (Ctrl-C in a notebook) leaves the process alive:
    the job stops beating once the search has not touched it for IDLE_GRACE_S outside a batch."""
    monkeypatch.setattr(job_module, "IDLE_GRACE_S", 0.3)
    tracker = job_module.JobTracker(record=True, config={"method": "grid"}, total=10)
    try:
        assert tracker.working()
        time.sleep(0.5)
        assert not tracker.working()  # interrupted: nobody touches the job any more
        with _batch():
            assert tracker.working()  # while a batch computes, however long, it is worked on
        tracker.cancel_requested()  # the search checks between batches: alive again
        assert tracker.working()
        time.sleep(0.5)
        assert reap_jobs(stale_after=0.4) == [tracker.job_id]  # alive process, silent job
        assert default_store().get_job(tracker.job_id)["status"] == "abandoned"
    finally:
        heartbeat.stop(tracker.job_id)
        with job_module._cancel_lock:
            job_module._running.pop(tracker.job_id, None)


def test_the_cli_lists_and_shows_abandoned_jobs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Store(home / "qlm.db") as store:
        jid = store.create_job("optimize", {"strategy": "sma.py", "method": "grid"}, total=8,
                               pid=_dead_pid())
        store.update_job(jid, status="running", done=3, pid=store.get_job(jid)["pid"])
    env = {**os.environ, "QLM_HOME": str(home)}
    listing = subprocess.run(
        [sys.executable, "-m", "qlm_kernel.cli", "jobs", "list", "--status", "abandoned"],
        capture_output=True, text=True, env=env, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert jid in listing.stdout and "abandoned" in listing.stdout
    shown = subprocess.run([sys.executable, "-m", "qlm_kernel.cli", "jobs", "show", jid],
                           capture_output=True, text=True, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert f"job {jid} (optimize): abandoned" in shown.stdout and "is gone" in shown.stdout
    assert f"--resume {jid}" in shown.stdout and f"on {HOST}" in shown.stdout


def test_the_progress_widget_shows_a_reaped_job_as_abandoned(home: Path, sleeper: subprocess.Popen) -> None:
    from qlm_kernel.widgets import OptimizationProgress

    store = default_store()
    jid = store.create_job("optimize", {"strategy": "sma.py", "method": "grid"}, total=10, pid=sleeper.pid)
    store.update_job(jid, status="running", done=3, pid=sleeper.pid)
    widget = OptimizationProgress(jid)
    try:
        assert widget.status == "running" and widget.done == 3
        assert reap_jobs([sleeper.pid]) == [jid]  # e.g. the pool lost that worker
        widget.wait_idle()
        assert widget.status == "abandoned" and widget.error["code"] == "JOB_ABANDONED"
        again = OptimizationProgress(jid)
        assert again.status == "abandoned"  # and so it loads from the store
        again.close()
    finally:
        widget.close()


def test_owner_on_another_host_is_judged_by_its_heartbeat_only(tmp_path: Path) -> None:
    with Store(tmp_path / "qlm.db") as store:
        dead_pid = _dead_pid()
        here = store.create_job("optimize", pid=dead_pid)
        there = store.create_job("optimize", pid=dead_pid, host="another-machine")
        silent = store.create_job("optimize", pid=dead_pid, host="another-machine")
        store.update_job(silent, heartbeat=time.time() - 120, host="another-machine")
        reaped = {r["id"]: r for r in store.reap_jobs()}
        assert set(reaped) == {here, silent}
        assert "is gone" in reaped[here]["reason"] and "no heartbeat" in reaped[silent]["reason"]
        assert store.get_job(there)["status"] == "pending"


def test_a_version_5_database_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / "qlm.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    assert migrate_connection(conn, MIGRATIONS[:5]) == [1, 2, 3, 4, 5]
    now = "2025-01-01T00:00:00.000000+00:00"
    for jid, status in (("old-done", "done"), ("old-running", "running")):
        conn.execute("INSERT INTO jobs (id, kind, status, heartbeat, pid, created_at, updated_at) "
                     "VALUES (?, 'optimize', ?, 1.0, ?, ?, ?)", (jid, status, _dead_pid(), now, now))
        for i in range(3):
            conn.execute("INSERT INTO trials (job_id, trial_key, params, created_at) VALUES (?, ?, '{}', ?)",
                         (jid, f"k{i}", now))
    conn.close()
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION >= 6
        assert [j["id"] for j in store.list_jobs()] == ["old-running", "old-done"]  # order kept
        assert store.get_job("old-running")["status"] == "abandoned"  # reaped at open: pid is gone
        assert len(store.list_trials("old-done")) == 3 and len(store.list_trials("old-running")) == 3
        assert store.integrity_check() == "ok"
        store.update_job("old-done", status="abandoned")  # the new status is allowed
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA foreign_key_check").fetchall() == []
        sql = check.execute("SELECT sql FROM sqlite_master WHERE name = 'trials'").fetchone()[0]
        assert "REFERENCES \"jobs\"" in sql or "REFERENCES jobs" in sql
        check.execute("PRAGMA foreign_keys = ON")
        check.execute("DELETE FROM jobs WHERE id = 'old-done'")  # the cascade still works
        assert check.execute("SELECT COUNT(*) FROM trials WHERE job_id = 'old-done'").fetchone()[0] == 0
    finally:
        check.close()


def _dead_pid() -> int:
    """The pid of a process that has ended (and been waited for)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid
