"""Retention on a real SQLite file: events by age and count, trials of old finished jobs, steps of old
heal sessions; settings from arguments > environment > store config > defaults; pruning at open at most
once a day; ``prune_store`` and ``qlm store prune`` (real subprocesses)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qlm_kernel.errors import ConfigError
from qlm_kernel.session.retention import prune_store
from qlm_kernel.store import MIGRATIONS, Store
from qlm_kernel.store import retention as retention_module
from qlm_kernel.store.retention import DEFAULTS, SETTINGS

DAY = 86_400.0


@pytest.fixture(autouse=True)
def no_retention_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from the defaults whatever the developer's environment says."""
    for env, _ in SETTINGS.values():
        monkeypatch.delenv(env, raising=False)


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "qlm.db") as s:
        yield s


def add_events(store: Store, n: int, age_days: float, topic: str = "job.progress") -> None:
    """``n`` events stamped ``age_days`` ago."""
    when = time.time() - age_days * DAY
    store.append_events([{"topic": topic, "payload": {"i": i}, "time": when} for i in range(n)])


def finished_job_with_trials(store: Store, n: int, status: str = "done") -> str:
    jid = store.create_job("optimize", {"strategy": "sma.py"}, total=n)
    store.add_trials(jid, [{"params": {"fast": i}, "objective": float(i)} for i in range(n)])
    store.finish_job(jid, status, best={"params": {"fast": n - 1}, "value": float(n - 1)})
    return jid


def heal_session_with_steps(store: Store, n: int, *, finished: bool) -> str:
    sid = store.create_heal_session("sma.py", max_attempts=3)
    t = time.time()
    for i in range(n):
        store.add_heal_step(sid, index=i + 1, attempt=0, kind="run", ok=False, started_at=t, ended_at=t)
    if finished:
        store.finish_heal_session(sid, "not_healed", healed=False, attempts=1)
    return sid


def test_defaults_keep_events_30_days_and_trials_and_heal_steps_for_ever(store: Store) -> None:
    assert store.retention_settings() == DEFAULTS == {
        "events_days": 30, "events_max_rows": 1_000_000, "trials_days": None, "heal_steps_days": None}
    add_events(store, 50, age_days=40)
    add_events(store, 5, age_days=10)
    add_events(store, 5, age_days=0)
    jid = finished_job_with_trials(store, 4)
    sid = heal_session_with_steps(store, 3, finished=True)
    last = store.last_event_id()
    far = time.time() + 3650 * DAY  # ten years on: trials and heal steps are still kept by default
    assert store.prune(dry_run=True) == {"events": 50, "trials": 0, "heal_steps": 0, "dry_run": True,
                                         "settings": DEFAULTS}
    assert len(store.tail_events(limit=100)) == 60  # a dry run deletes nothing
    result = store.prune()
    assert (result["events"], result["trials"], result["heal_steps"]) == (50, 0, 0)
    remaining = store.tail_events(limit=100)
    assert len(remaining) == 10 and store.last_event_id() == last  # ids are never reused
    assert store.prune(now=far)["events"] == 10
    assert len(store.list_trials(jid)) == 4 and len(store.get_heal_session(sid)["steps"]) == 3


def test_events_are_capped_by_count_in_chunks(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention_module, "CHUNK_ROWS", 7)  # many small transactions
    add_events(store, 60, age_days=0)
    newest = [e["id"] for e in store.tail_events(limit=100)][-25:]
    monkeypatch.setenv("QLM_RETAIN_EVENTS_ROWS", "25")
    assert store.prune()["events"] == 35
    assert [e["id"] for e in store.tail_events(limit=100)] == newest


def test_trials_of_old_finished_jobs_go_when_configured(store: Store) -> None:
    done = finished_job_with_trials(store, 5)
    abandoned = finished_job_with_trials(store, 3, status="abandoned")
    running = store.create_job("optimize", total=10)
    store.update_job(running, status="running")
    store.add_trials(running, [{"params": {"fast": 1}}, {"params": {"fast": 2}}])
    store.set_config("retention.trials_days", 180)
    assert store.prune(now=time.time() + 100 * DAY)["trials"] == 0  # finished 100 days ago: kept
    result = store.prune(now=time.time() + 200 * DAY)
    assert result["trials"] == 8 and result["settings"]["trials_days"] == 180
    assert store.list_trials(done) == [] and store.list_trials(abandoned) == []
    assert len(store.list_trials(running)) == 2  # an unfinished job keeps everything
    assert store.get_job(done)["best"]["value"] == 4.0  # the job row and its best result stay


def test_steps_of_old_ended_heal_sessions_go_when_configured(store: Store,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ended = heal_session_with_steps(store, 4, finished=True)
    running = heal_session_with_steps(store, 2, finished=False)
    monkeypatch.setenv("QLM_RETAIN_HEAL_DAYS", "90")
    assert store.prune(now=time.time() + 91 * DAY)["heal_steps"] == 4
    session = store.get_heal_session(ended)
    assert session["steps"] == [] and session["status"] == "not_healed"
    assert len(store.get_heal_session(running)["steps"]) == 2


def test_settings_precedence_and_errors(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.set_config("retention.events_days", 7)
    store.set_config("retention.trials_days", None)  # JSON null: keep
    assert store.retention_settings()["events_days"] == 7.0
    monkeypatch.setenv("QLM_RETAIN_EVENTS_DAYS", "3")
    monkeypatch.setenv("QLM_RETAIN_TRIALS_DAYS", "forever")
    settings = store.retention_settings(events_max_rows="forever")
    assert settings == {"events_days": 3.0, "events_max_rows": None, "trials_days": None,
                        "heal_steps_days": None}
    assert store.retention_settings(events_days=1)["events_days"] == 1.0  # arguments win
    for name, value in (("events_days", "-1"), ("events_days", "soon"), ("events_max_rows", "2.5")):
        with pytest.raises(ConfigError) as info:
            store.retention_settings(**{name: value})
        assert info.value.context["setting"] == name and info.value.hint
    monkeypatch.setenv("QLM_RETAIN_EVENTS_ROWS", "lots")
    with pytest.raises(ConfigError, match=r"QLM_RETAIN_EVENTS_ROWS"):
        store.prune()
    with pytest.raises(ConfigError, match="unknown retention setting"):
        store.prune(events_weeks=2)


def test_a_bad_setting_never_stops_a_store_from_opening(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("QLM_RETAIN_EVENTS_DAYS", "a month")
    with caplog.at_level(logging.WARNING, logger="qlm_kernel.store"), Store(tmp_path / "qlm.db") as s:
        assert s.append_events([{"topic": "x"}]) == 1
    assert "QLM_RETAIN_EVENTS_DAYS" in caplog.text


def test_the_store_prunes_when_it_opens_at_most_once_a_day(tmp_path: Path) -> None:
    path = tmp_path / "qlm.db"
    with Store(path, migrations=MIGRATIONS[:6]) as old:  # a database from before retention
        add_events(old, 20, age_days=45)
        add_events(old, 2, age_days=1)
    with Store(path) as store:  # migrates, then prunes at open: never pruned before
        assert len(store.tail_events(limit=100)) == 2
        add_events(store, 5, age_days=45)
    with Store(path) as store:  # pruned less than a day ago: left alone
        assert len(store.tail_events(limit=100)) == 7
        assert store.prune_if_due(now=time.time() + 3600) is None
        due = store.prune_if_due(now=time.time() + 1.5 * DAY)
        assert due is not None and due["events"] == 5


def test_prune_store_and_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    assert prune_store(home=home)["database"] is False and not (home / "qlm.db").exists()
    with Store(home / "qlm.db") as store:
        add_events(store, 12, age_days=5)
        add_events(store, 3, age_days=0)
        jid = finished_job_with_trials(store, 6)
    env = {**os.environ, "QLM_HOME": str(home)}

    def qlm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "qlm_kernel.cli", *args], capture_output=True,
                              text=True, env=env, timeout=120)

    counted = qlm("store", "prune", "--dry-run", "--events-days", "2", "--json")
    assert counted.returncode == 0, counted.stderr
    assert json.loads(counted.stdout)["events"] == 12 and json.loads(counted.stdout)["dry_run"] is True
    pruned = qlm("store", "prune", "--events-days", "2")
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned 12 events, 0 trials, 0 heal steps" in pruned.stdout and "events: 2 days" in pruned.stdout
    bad = qlm("store", "prune", "--trials-days", "sometime", "--json")
    assert bad.returncode == 5 and json.loads(bad.stdout or bad.stderr)["type"] == "ConfigError"
    assert prune_store(home=home, trials_days=0.0001)["trials"] == 0  # finished < 8.6 s ago: kept
    time.sleep(0.2)
    assert prune_store(home=home, trials_days=0.000001)["trials"] == 6
    with Store(home / "qlm.db", readonly=True) as store:
        assert store.list_trials(jid) == [] and len(store.tail_events(limit=100)) == 3
