"""Jobs and trials: progress, cancellation across processes, idempotent trial batches for resume."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pytest

from qlm_kernel.errors import ConfigError
from qlm_kernel.store import Store, trial_key


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "qlm.db") as s:
        yield s


def test_job_lifecycle(store):
    jid = store.create_job("grid", {"space": {"fast": [5, 10]}}, total=2)
    job = store.get_job(jid)
    assert len(jid) == 12 and job["status"] == "pending" and job["done"] == 0 and job["total"] == 2
    assert job["config"] == {"space": {"fast": [5, 10]}} and job["pid"] == os.getpid()
    assert job["cancel_requested"] is False and job["finished_at"] is None
    before = job["heartbeat"]
    time.sleep(0.01)
    store.update_job(jid, status="running", done=1, best={"params": {"fast": 5}, "value": 1.2})
    job = store.get_job(jid)
    assert job["status"] == "running" and job["done"] == 1 and job["best"]["value"] == 1.2
    assert job["heartbeat"] > before and job["updated_at"] >= job["created_at"]
    store.update_job(jid, heartbeat=123.0)
    assert store.get_job(jid)["heartbeat"] == 123.0
    store.finish_job(jid, "done")
    job = store.get_job(jid)
    assert job["status"] == "done" and job["best"]["value"] == 1.2 and job["finished_at"]
    failed = store.create_job("genetic")
    store.finish_job(failed, "failed", error=RuntimeError("out of memory"))
    assert store.get_job(failed)["error"] == {"type": "RuntimeError", "message": "out of memory"}


def test_list_jobs_filters(store):
    a = store.create_job("grid")
    b = store.create_job("genetic")
    c = store.create_job("grid", job_id="my-job")
    store.update_job(b, status="running")
    assert [j["id"] for j in store.list_jobs()] == [c, b, a]
    assert [j["id"] for j in store.list_jobs(status="running")] == [b]
    assert [j["id"] for j in store.list_jobs(kind="grid", limit=1)] == [c]
    with pytest.raises(ConfigError) as info:
        store.create_job("grid", job_id="my-job")
    assert info.value.code == "JOB_EXISTS"


@pytest.mark.parametrize("call", [
    lambda s, j: s.update_job(j, status="exploded"),
    lambda s, j: s.update_job(j, colour="red"),
    lambda s, j: s.update_job(j, done=-1),
    lambda s, j: s.finish_job(j, "running"),
    lambda s, j: s.update_job("no-such-job", done=1),
    lambda s, j: s.cancel_requested("no-such-job"),
    lambda s, j: s.add_trials("no-such-job", [{"params": {"a": 1}}]),
    lambda s, j: s.add_trials(j, [{"metrics": {}}]),
])
def test_job_arguments_are_checked(store, call):
    jid = store.create_job("grid")
    with pytest.raises(ConfigError) as info:
        call(store, jid)
    assert info.value.hint and info.value.context


def test_cancel_request_from_another_process(store, tmp_path):
    jid = store.create_job("grid")
    store.update_job(jid, status="running")
    assert store.cancel_requested(jid) is False
    code = ("import sys; from qlm_kernel.store import Store; s = Store(sys.argv[1]); "
            "print(s.request_cancel(sys.argv[2])); s.close()")
    out = subprocess.run([sys.executable, "-c", code, str(store.path), jid], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "True"
    assert store.cancel_requested(jid) is True and store.get_job(jid)["cancel_requested"] is True
    store.finish_job(jid, "cancelled")
    assert store.request_cancel(jid) is False  # already finished


def test_trials_are_idempotent_and_resumable(store):
    jid = store.create_job("grid", total=4)
    rows = [{"params": {"slow": 20, "fast": 5}, "metrics": {"sharpe": 1.0}, "objective": 1.0},
            {"params": {"fast": 10, "slow": 20}, "metrics": {"sharpe": math.nan}, "objective": math.nan},
            {"params": {"fast": 15, "slow": 20}, "status": "error", "metrics": {"error": "boom"}}]
    assert store.add_trials(jid, rows) == 3
    assert store.add_trials(jid, [{"params": {"fast": 5, "slow": 20}, "objective": 9.0},
                                  {"params": {"fast": 20, "slow": 20}, "objective": 2.0}]) == 1
    assert store.add_trials(jid, []) == 0
    trials = store.list_trials(jid)
    assert [t["params"]["fast"] for t in trials] == [5, 10, 15, 20]
    assert trials[0]["trial_key"] == '{"fast":5,"slow":20}' == trial_key({"slow": 20, "fast": 5})
    assert trials[0]["objective"] == 1.0 and trials[1]["objective"] is None and trials[2]["status"] == "error"
    assert math.isnan(trials[1]["metrics"]["sharpe"])
    assert [t["params"]["fast"] for t in store.list_trials(jid, status="error")] == [15]
    assert len(store.list_trials(jid, limit=2)) == 2
    assert store.finished_trial_keys(jid) == {trial_key({"fast": f, "slow": 20}) for f in (5, 10, 15, 20)}
    other = store.create_job("grid")
    assert store.add_trials(other, rows[:1]) == 1
    assert store.finished_trial_keys(other) == {trials[0]["trial_key"]}
