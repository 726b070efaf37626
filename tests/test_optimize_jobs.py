"""Optimization jobs against a real store in a temp QLM_HOME: events and progress, cancel from
another thread, resume after SIGKILL of a real subprocess (grid and genetic), resume checks, Dask."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pandas as pd
import pytest

from qlm_kernel.data import sample_data
from qlm_kernel.errors import OptimizationError
from qlm_kernel.events import subscribe
from qlm_kernel.optimization import optimize
from qlm_kernel.session import cancel_job as cancel
from qlm_kernel.store import default_store

SLOW = """
import time
from qlm_kernel import Param, Signals, Strategy
from qlm_kernel import indicators as ta


class SlowCross(Strategy):
    fast = Param(5, min=2, max=40)
    slow = Param(30, min=20, max=80)
    nap = 0.03

    def signals(self, data):
        time.sleep(self.nap)
        close = data["close"]
        f, s = ta.sma(close, self.fast), ta.sma(close, self.slow)
        return Signals(entry_long=ta.crossed_above(f, s), exit_long=ta.crossed_below(f, s))
"""
SAMPLE = {"kind": "synthetic", "n": 3000, "seed": 5}
GRID_SPACE = {"fast": list(range(2, 14)), "slow": [20, 30, 40, 50, 60]}  # 60 trials
GA_SPACE = {"fast": list(range(2, 40)), "slow": list(range(20, 80))}  # 2280 combos
GA_KW = {"method": "genetic", "n_trials": 70, "seed": 3, "patience": 20}



@pytest.fixture
def slow_file(tmp_path) -> str:
    path = tmp_path / "slow_cross.py"
    path.write_text(SLOW)
    return str(path)


def test_events_progress_and_store_job(home, slow_file):
    q: queue.Queue = queue.Queue()
    seen: list[dict] = []
    sub = subscribe("job.*", q)
    try:
        res = optimize(
            slow_file,
            sample=SAMPLE,
            space={"fast": [3, 5, 8, 13], "slow": [20, 40]},
            n_jobs=2,
            batch_size=2,
            progress=seen.append,
            fees=0.0005,
        )
    finally:
        sub.unsubscribe()
    events = []
    while not q.empty():
        e = q.get_nowait()
        if e.payload.get("job_id") == res.job_id:
            events.append(e)
    topics = [e.topic for e in events]
    assert topics[0] == "job.created" and topics[-1] == "job.finished"
    progress = [e.payload for e in events if e.topic == "job.progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] == 8
    dones = [p["done"] for p in progress]
    assert dones == sorted(dones)
    assert {"best_params", "best_value", "rate", "eta_s"} <= set(progress[-1])
    assert progress[-1]["best_value"] == res.best_value and seen[-1]["done"] == 8
    job = default_store().get_job(res.job_id)
    assert job["status"] == "done" and job["done"] == job["total"] == 8 and job["kind"] == "optimize"
    cfg = job["config"]
    assert cfg["space"] == {"fast": [3, 5, 8, 13], "slow": [20, 40]} and cfg["method"] == "grid"
    assert cfg["settings"]["fees"] == 0.0005 and cfg["strategy_sha"] and cfg["data_fingerprint"]
    assert job["best"]["params"] == res.best_params
    assert len(default_store().list_trials(res.job_id)) == 8


def test_cancel_from_another_thread(home, slow_file):
    q: queue.Queue = queue.Queue()
    sub = subscribe("job.created", q)

    def canceller() -> None:
        job_id = q.get(timeout=30).payload["job_id"]
        store = default_store()
        deadline = time.monotonic() + 30
        while len(store.list_trials(job_id)) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        cancel(job_id)

    thread = threading.Thread(target=canceller)
    thread.start()
    try:
        res = optimize(slow_file, sample=SAMPLE, space=GRID_SPACE, n_jobs=1, batch_size=2)
    finally:
        thread.join()
        sub.unsubscribe()
    assert res.status == "cancelled" and 4 <= len(res.rows) < 60
    job = default_store().get_job(res.job_id)
    assert job["status"] == "cancelled" and job["cancel_requested"]
    assert len(default_store().list_trials(res.job_id)) == len(res.rows)
    done = optimize(slow_file, sample=SAMPLE, space=GRID_SPACE, resume=res.job_id, n_jobs=2)
    assert done.status == "done" and len(done.rows) == 60 and done.n_computed == 60 - len(res.rows)


def _start_and_kill(home, slow_file: str, space: dict, kwargs: dict, min_trials: int) -> str:
    """Run optimize in a real subprocess; SIGKILL it once ``min_trials`` are stored; return the job id."""
    code = textwrap.dedent(f"""
        from qlm_kernel.optimization import optimize
        optimize({slow_file!r}, sample={SAMPLE!r}, space={space!r}, n_jobs=1, batch_size=4, **{kwargs!r})
    """)
    env = {**os.environ, "QLM_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        store = default_store()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            jobs = store.list_jobs(kind="optimize")
            if jobs and len(store.list_trials(jobs[0]["id"])) >= min_trials:
                break
            assert proc.poll() is None, "the optimization subprocess ended before it was killed"
            time.sleep(0.05)
        else:
            pytest.fail("no trials were stored in time")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    job = jobs[0]
    assert job["status"] == "running"  # killed: never finished
    return job["id"]


def _same_trials(a, b) -> None:
    pd.testing.assert_frame_equal(a.trials, b.trials)
    assert [r["stats"] for r in a.rows] == [r["stats"] for r in b.rows]
    pd.testing.assert_frame_equal(a.returns_matrix(), b.returns_matrix())
    assert a.best_params == b.best_params and a.best_value == b.best_value


def test_resume_grid_after_sigkill(home, slow_file):
    job_id = _start_and_kill(home, slow_file, GRID_SPACE, {}, min_trials=8)
    stored = len(default_store().list_trials(job_id))
    assert stored < 60
    resumed = optimize(slow_file, sample=SAMPLE, space=GRID_SPACE, resume=job_id, n_jobs=2)
    assert resumed.status == "done" and resumed.job_id == job_id and len(resumed.rows) == 60
    assert resumed.n_computed == 60 - stored  # stored trials were looked up, not recomputed
    assert len(default_store().list_trials(job_id)) == 60
    assert default_store().get_job(job_id)["status"] == "done"
    fresh = optimize(slow_file, sample=SAMPLE, space=GRID_SPACE, record=False, n_jobs=2)
    _same_trials(resumed, fresh)


def test_resume_genetic_after_sigkill(home, slow_file):
    job_id = _start_and_kill(home, slow_file, GA_SPACE, GA_KW, min_trials=28)
    stored = len(default_store().list_trials(job_id))
    resumed = optimize(slow_file, sample=SAMPLE, space=GA_SPACE, resume=job_id, n_jobs=2, **GA_KW)
    fresh = optimize(slow_file, sample=SAMPLE, space=GA_SPACE, record=False, n_jobs=2, **GA_KW)
    assert resumed.status == "done" and len(resumed.rows) == len(fresh.rows) > stored >= 28
    assert resumed.n_computed == len(fresh.rows) - stored
    _same_trials(resumed, fresh)


def test_resume_refuses_a_different_setup(home, slow_file):
    space = {"fast": [3, 5], "slow": [20, 30]}
    res = optimize(slow_file, sample=SAMPLE, space=space, n_jobs=1)
    with pytest.raises(OptimizationError, match="space") as info:
        optimize(slow_file, sample=SAMPLE, space={"fast": [3, 6], "slow": [20, 30]}, resume=res.job_id)
    assert info.value.code == "RESUME_MISMATCH"
    with pytest.raises(OptimizationError, match="settings"):
        optimize(slow_file, sample=SAMPLE, space=space, resume=res.job_id, fees=0.01)
    with pytest.raises(OptimizationError, match="data_fingerprint"):
        optimize(slow_file, sample={**SAMPLE, "seed": 6}, space=space, resume=res.job_id)
    again = optimize(slow_file, resume=res.job_id)  # space, data and method come from the stored job
    pd.testing.assert_frame_equal(again.trials, res.trials)


def test_dask_matches_threads(slow_file):
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")
    df = sample_data("synthetic", n=3000, seed=5)
    space = {"fast": [3, 5, 8], "slow": [20, 40, 60]}
    threads = optimize(slow_file, df, space, record=False, n_jobs=2)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_dask = optimize(slow_file, df, space, record=False, executor=client, batch_size=4)
    _same_trials(on_dask, threads)
