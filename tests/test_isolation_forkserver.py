"""Workers forked by a warmed fork server, with real processes: each worker is the server's
child in its own session at the workers' niceness; neither the server nor a worker holds a secret; a
worker killed at its limit is replaced by a fork; the server dying takes its workers with it and the pool
starts a new one; ``QLM_WORKER_START=spawn`` spawns each worker as before; two forked workers do not
share NumPy's global random state; pools of one worker environment share one server, stopped with the
last of them."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from qlm_kernel.isolation import WorkerPool
from qlm_kernel.isolation.forkserver import ENV_START_METHOD, supported
from qlm_kernel.isolation.worker import WORKER_NICENESS
from tests.isolation_cases import write_cases

pytestmark = pytest.mark.skipif(not supported(), reason="forking workers needs Linux with pidfds")

SAMPLE = {"kind": "synthetic", "n": 2000, "seed": 0}
BACKTEST = "qlm_kernel.session.backtesting:backtest"
SECRET = "s3cr3t-for-the-fork-server"
RANDOM_DRAW = '''
import numpy as np

from qlm_kernel import Signals, Strategy


class RandomDraw(Strategy):
    """Enters where NumPy's global generator draws below 0.5 and exits elsewhere: about 500 trades
    in 2,000 bars, so two processes with different states give different equity curves."""

    def signals(self, data):
        draw = np.random.random(len(data)) < 0.5
        return Signals(entry_long=draw, exit_long=~draw)
'''


@pytest.fixture
def cases(home: Path) -> Path:
    write_cases(home / "strategies")
    (home / "strategies" / "random_draw.py").write_text(RANDOM_DRAW)
    return home


def run(pool: WorkerPool, strategy: str, time_limit: float = 60) -> object:
    return pool.call(BACKTEST, {"strategy": strategy, "sample": SAMPLE, "record": False},
                     time_limit=time_limit)


def environ(pid: int) -> dict[str, str]:
    return psutil.Process(pid).environ()


def test_workers_are_forked_children_of_a_secret_free_server(cases: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QLM_CCXT_SECRET", SECRET)
    monkeypatch.setenv("MY_API_TOKEN", SECRET)
    pool = WorkerPool(2)
    try:
        run(pool, "sma_cross")
        pool.warm()
        status = pool.status()
        server = status["forkserver"]
        assert server["running"] and server["error"] is None
        workers = status["workers"]
        assert {w["started_by"] for w in workers} == {"fork"}
        for pid in [server["pid"], *(w["pid"] for w in workers)]:
            env = environ(pid)
            assert SECRET not in env.values() and env["QLM_WORKER"] == "1", pid
        for w in workers:
            process = psutil.Process(w["pid"])
            assert process.ppid() == server["pid"]
            assert os.getsid(w["pid"]) == w["pid"]  # its own session: a terminal's Ctrl-C is not for it
            assert process.nice() == WORKER_NICENESS
        assert psutil.Process(server["pid"]).ppid() == os.getpid()
    finally:
        pool.shutdown()
    assert not psutil.pid_exists(server["pid"]) or psutil.Process(server["pid"]).status() == "zombie"


def test_a_worker_killed_at_its_limit_is_replaced_by_a_fork(cases: Path) -> None:
    pool = WorkerPool(1)
    try:
        run(pool, "sma_cross")
        [before] = pool.status()["workers"]
        with pytest.raises(Exception) as caught:
            run(pool, "numba_loop.py", time_limit=1.0)
        assert getattr(caught.value, "code", None) == "TIMEOUT"
        assert run(pool, "sma_cross").stats["n_trades"] > 0
        status = pool.status()
        [after] = status["workers"]
        assert after["pid"] != before["pid"] and after["started_by"] == "fork"
        assert psutil.Process(after["pid"]).ppid() == status["forkserver"]["pid"]
        assert not psutil.pid_exists(before["pid"])  # killed and reaped by the server
    finally:
        pool.shutdown()


def test_the_servers_death_takes_its_workers_and_the_pool_starts_a_new_one(cases: Path) -> None:
    pool = WorkerPool(1)
    try:
        run(pool, "sma_cross")
        first = pool.status()
        [worker] = first["workers"]
        psutil.Process(first["forkserver"]["pid"]).kill()
        psutil.wait_procs([psutil.Process(worker["pid"])], timeout=5)
        assert not psutil.pid_exists(worker["pid"])  # its parent-death signal
        assert run(pool, "sma_cross").stats["n_trades"] > 0  # a dead idle worker is replaced
        second = pool.status()
        assert second["forkserver"]["running"]
        assert second["forkserver"]["pid"] != first["forkserver"]["pid"]
        assert [w["started_by"] for w in second["workers"]] == ["fork"]
    finally:
        pool.shutdown()


def test_spawn_start_method_spawns_each_worker(cases: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_START_METHOD, "spawn")
    pool = WorkerPool(1)
    try:
        run(pool, "sma_cross")
        status = pool.status()
        [worker] = status["workers"]
        assert worker["started_by"] == "spawn" and status["forkserver"]["pid"] is None
        assert psutil.Process(worker["pid"]).ppid() == os.getpid()
    finally:
        pool.shutdown()


def test_forked_workers_draw_different_random_numbers(cases: Path) -> None:
    pool = WorkerPool(1)
    try:
        draws = []
        for _ in range(2):  # the second on a fresh fork: the first worker is killed by a timeout
            draws.append(run(pool, "random_draw.py").equity.tolist())
            with pytest.raises(Exception) as caught:
                run(pool, "py_loop.py", time_limit=0.5)
            assert getattr(caught.value, "code", None) == "TIMEOUT"
        assert draws[0] != draws[1]
    finally:
        pool.shutdown()


def test_pools_of_one_environment_share_one_server_until_the_last_shuts_down(
        cases: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = WorkerPool(1), WorkerPool(1)
    try:
        run(first, "sma_cross")
        run(second, "sma_cross")
        server = first.status()["forkserver"]["pid"]
        assert second.status()["forkserver"]["pid"] == server  # one start-up, one warmed copy
        [worker] = second.status()["workers"]
        assert psutil.Process(worker["pid"]).ppid() == server
        monkeypatch.setenv("QLM_FORK_TEST_MARK", "changed")  # another worker environment: its own server
        third = WorkerPool(1)
        try:
            run(third, "sma_cross")
            own = third.status()["forkserver"]["pid"]
            assert own != server and environ(own).get("QLM_FORK_TEST_MARK") == "changed"
        finally:
            third.shutdown()
        assert not psutil.pid_exists(own)  # its only pool shut down: stopped
        first.shutdown()
        assert psutil.pid_exists(server)  # still the second pool's
        assert run(second, "sma_cross").stats["n_trades"] > 0
        assert [w["pid"] for w in second.status()["workers"]] == [worker["pid"]]
    finally:
        first.shutdown()
        second.shutdown()
    assert not psutil.pid_exists(server)  # the last pool using it shut down
