"""The worker pool with real processes: time limits enforced by killing, crashes and memory caps
answered, BUSY at once, cancel at once, secrets scrubbed, events forwarded, no orphan workers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from qlm_kernel.errors import QLMError
from qlm_kernel.events import subscribe
from qlm_kernel.isolation import WorkerPool, is_secret, scrubbed_environment
from tests.isolation_cases import write_cases

SAMPLE = {"kind": "synthetic", "n": 2000, "seed": 0}
BACKTEST = "qlm_kernel.session.backtesting:backtest"


@pytest.fixture
def cases(home: Path) -> Path:
    write_cases(home / "strategies")
    return home


@pytest.fixture
def pool():
    workers = WorkerPool(1)
    yield workers
    workers.shutdown()


def backtest_args(name: str, **kwargs) -> dict:
    return {"strategy": name, "sample": SAMPLE, "record": False, **kwargs}


def failure(pool: WorkerPool, name: str, time_limit: float, **kwargs) -> tuple[QLMError, float]:
    started = time.perf_counter()
    with pytest.raises(QLMError) as caught:
        pool.call(BACKTEST, backtest_args(name, **kwargs), time_limit=time_limit)
    return caught.value, time.perf_counter() - started


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def worker_pids(pool: WorkerPool) -> list[int]:
    return [w["pid"] for w in pool.status()["workers"]]


def warm(pool: WorkerPool) -> None:
    pool.call(BACKTEST, backtest_args("sma_cross"), time_limit=60)  # start-up and engine load


def test_secrets_are_not_in_a_workers_environment(cases: Path, monkeypatch) -> None:
    for name, value in {"QLM_CCXT_SECRET": "s3cr3t-ccxt", "QLM_MCP_TOKEN": "s3cr3t-token",
                        "MY_API_KEY": "s3cr3t-key", "DB_PASSWORD": "s3cr3t-pw"}.items():
        monkeypatch.setenv(name, value)
    pool = WorkerPool(1)
    try:
        err, _ = failure(pool, "secret_reader.py", 60)
    finally:
        pool.shutdown()
    text = err.to_json()
    assert "s3cr3t" not in text
    assert "'QLM_CCXT_SECRET': 'absent'" in err.message and "'MY_API_KEY': 'absent'" in err.message
    assert f"'QLM_HOME': '{cases}'" in err.message  # settings do reach the worker


def test_secret_names_are_recognised() -> None:
    for name in ("QLM_CCXT_APIKEY", "QLM_CCXT_UID", "QLM_MCP_TOKEN", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN",
                 "db_password", "SSH_AUTH_SOCK", "GOOGLE_APPLICATION_CREDENTIALS"):
        assert is_secret(name), name
    for name in ("PATH", "HOME", "QLM_HOME", "NUMBA_NUM_THREADS", "LANG"):
        assert not is_secret(name), name
    env = scrubbed_environment({"PATH": "/bin", "QLM_CCXT_SECRET": "x"})
    assert env == {"PATH": "/bin", "QLM_WORKER": "1"}


@pytest.mark.parametrize("name", ["py_loop.py", "numba_loop.py", "stubborn_loop.py"])
def test_an_endless_loop_is_killed_at_its_limit_and_the_worker_replaced(cases: Path, pool, name) -> None:
    warm(pool)
    [pid] = worker_pids(pool)
    err, seconds = failure(pool, name, 1.5)
    assert err.code == "TIMEOUT" and "1.5 s" in err.message
    assert seconds < 1.5 + 1.0
    assert gone(pid)  # killed: no thread left spinning anywhere
    assert pool.call(BACKTEST, backtest_args("sma_cross"), time_limit=60).stats["total_return"] is not None
    assert worker_pids(pool) != [pid]


def past_its_own_limit(pool: WorkerPool, name: str) -> tuple[QLMError, float, int]:
    """Run strategy ``name`` with its own 1 s limit inside a 30 s call on a warm one-worker pool: the
    error, the seconds it took and the pid of the worker that ran it."""
    warm(pool)
    [pid] = worker_pids(pool)
    started = time.perf_counter()
    with pytest.raises(QLMError) as caught:
        pool.call(BACKTEST, backtest_args(name, time_limit=1.0), time_limit=30)
    return caught.value, time.perf_counter() - started, pid


def test_a_loop_that_swallows_the_interruption_is_reported_so_and_its_worker_retired(cases: Path,
                                                                                  pool) -> None:
    err, seconds, pid = past_its_own_limit(pool, "stubborn_loop.py")
    assert err.code == "TIMEOUT" and "could not be interrupted" in err.message
    assert err.context["interrupted"] is False
    assert seconds < 1.0 + 1.0
    status = pool.status()
    # the worker reports it and is retired, or (its report late on a loaded machine: the spinning thread
    # competes for the GIL) is killed half a second past the limit: either way the thread died with it
    assert gone(pid) and status["retired_dirty"] + status["timeouts"] == 1


def test_a_compiled_loop_past_its_own_limit_is_killed_and_said_uninterruptible(cases: Path, pool) -> None:
    err, seconds, pid = past_its_own_limit(pool, "numba_loop.py")
    assert err.code == "TIMEOUT" and "1 s and could not be interrupted" in err.message
    assert err.context["interrupted"] is False and err.context["time_limit"] == 1.0
    assert seconds < 1.0 + 1.0
    assert gone(pid) and pool.status()["timeouts"] == 1  # killed by the pool: it cannot report


def test_a_numba_cache_written_by_one_worker_loads_in_the_next(cases: Path) -> None:
    """``@njit(cache=True)`` in a strategy file: the second process loads the first one's cache (the
    strategy module has the same importable name in every process) instead of failing."""
    results = []
    for _ in range(2):  # two fresh workers, one after the other
        pool = WorkerPool(1)
        try:
            results.append(pool.call(BACKTEST, backtest_args("numba_cached.py"), time_limit=120).stats)
        finally:
            pool.shutdown()
    assert results[0]["total_return"] == results[1]["total_return"]
    assert list((cases / "strategies" / "__pycache__").glob("numba_cached*.nbi"))


def test_a_crash_in_compiled_code_is_worker_died_and_the_pool_goes_on(cases: Path, pool) -> None:
    err, _ = failure(pool, "segfault.py", 60)
    assert err.code == "WORKER_DIED" and "SIGSEGV" in err.message
    assert err.context["returncode"] == -11
    assert pool.call(BACKTEST, backtest_args("sma_cross"), time_limit=60).stats is not None
    assert pool.status()["died"] == 1


def test_memory_beyond_the_cap_fails_in_the_worker_not_the_kernel(cases: Path) -> None:
    pool = WorkerPool(1, memory_bytes=lambda: 1024**3)  # 1 GiB over what the worker maps at start
    try:
        err, _ = failure(pool, "memory_hog.py", 60)
        assert "memory" in err.message.lower() or "MemoryError" in err.message
        assert pool.call(BACKTEST, backtest_args("sma_cross"), time_limit=60).stats is not None
    finally:
        pool.shutdown()


def test_a_call_past_the_workers_is_busy_at_once(cases: Path, pool) -> None:
    warm(pool)
    errors: list[QLMError] = []
    runner = threading.Thread(target=lambda: errors.append(failure(pool, "py_loop.py", 3)[0]))
    runner.start()
    while not pool.status()["busy"]:
        time.sleep(0.01)
    started = time.perf_counter()
    with pytest.raises(QLMError) as caught:
        pool.call(BACKTEST, backtest_args("sma_cross"), time_limit=60)
    assert caught.value.code == "BUSY" and "QLM_WORKERS" in caught.value.hint
    assert time.perf_counter() - started < 0.5
    runner.join()
    assert errors[0].code == "TIMEOUT"


def test_cancel_kills_the_worker_at_once(cases: Path, pool) -> None:
    warm(pool)
    [pid] = worker_pids(pool)
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.perf_counter()
    with pytest.raises(QLMError) as caught:
        pool.call(BACKTEST, backtest_args("numba_loop.py"), time_limit=60, cancel=cancel)
    assert caught.value.code == "CANCELLED"
    assert time.perf_counter() - started < 1.5
    assert gone(pid)


def test_worker_events_reach_this_processs_bus(cases: Path, pool) -> None:
    seen = []
    sub = subscribe("engine.backtest.*", seen.append)
    try:
        pool.call(BACKTEST, backtest_args("sma_cross"), time_limit=60)
        deadline = time.time() + 5
        while len(seen) < 2 and time.time() < deadline:
            time.sleep(0.02)
    finally:
        sub.unsubscribe()
    topics = [e.topic for e in seen]
    assert "engine.backtest.finished" in topics
    assert all(e.source != f"kernel:{os.getpid()}" for e in seen)  # published by the worker


def test_workers_die_with_their_kernel(cases: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, threading, time
        from qlm_kernel.isolation import WorkerPool
        pool = WorkerPool(1)
        args = {{"strategy": "numba_loop.py", "sample": {SAMPLE!r}, "record": False}}
        threading.Thread(target=lambda: pool.call("{BACKTEST}", args, time_limit=600), daemon=True).start()
        while not pool.status()["busy"]:
            time.sleep(0.05)
        print(pool.status()["workers"][0]["pid"], flush=True)
        time.sleep(600)
    """)
    kernel = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "QLM_HOME": str(cases)})
    worker = int(kernel.stdout.readline())
    assert psutil.pid_exists(worker)
    kernel.kill()
    kernel.wait()
    deadline = time.time() + 5
    while not gone(worker) and time.time() < deadline:
        time.sleep(0.05)
    assert gone(worker)


PID_ONE = """
from qlm_kernel.isolation import WorkerPool
import os
assert os.getpid() == 1, os.getpid()
pool = WorkerPool(1)
try:
    res = pool.call("qlm_kernel.session.backtesting:backtest",
                    {"strategy": "sma_cross", "sample": {"kind": "synthetic", "n": 500}, "record": False},
                    time_limit=120)
    print("bars", len(res.equity), "trades", int(res.stats["n_trades"]))
finally:
    pool.shutdown()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                    reason="a new PID namespace needs Linux and root (CI runs as root)")
def test_workers_start_when_the_kernel_is_pid_1(home: Path) -> None:
    """A container's main process is pid 1: its workers' 'has my parent died?' check must not read
    'my parent is pid 1' as death (it did, and every MCP backtest in a container failed to start)."""
    done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", PID_ONE],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "QLM_HOME": str(home)})
    assert done.returncode == 0, done.stderr[-3000:]
    bars, trades = done.stdout.split()[1::2]
    assert int(bars) == 500 and int(trades) > 0, done.stdout
