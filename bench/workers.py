"""Worker start-up benchmark: workers forked by the warmed fork server vs spawned one by one, same run.

Run: ``.venv/bin/python bench/workers.py [--repeat 7]``. For each start method (``QLM_WORKER_START``
= ``fork`` | ``spawn``), in this process:

1. a new pool's first call (a tiny backtest), which pays the start-up of the fork server or of the
   first spawned worker (imports, Numba's set-up, the engine's kernels loaded from the disk cache);
2. a replacement: the worker is killed at a time limit, and the next call waits for the new one;
3. the CPU seconds the pool's processes used for (2), read from /proc (what a suite of timeouts pays).

Medians over ``--repeat`` runs; the ratio spawn / fork is printed. There is no bare-loop reference here:
what is measured is process start-up, not computation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("QLM_HOME", tempfile.mkdtemp(prefix="qlm-bench-"))

import psutil

from qlm_kernel.errors import QLMError
from qlm_kernel.isolation import WorkerPool
from qlm_kernel.isolation.forkserver import ENV_START_METHOD

TARGET = "qlm_kernel.session.backtesting:backtest"
SAMPLE = {"kind": "synthetic", "n": 500, "seed": 0}
LOOP = '''
from qlm_kernel import Strategy


class Loop(Strategy):
    def signals(self, data):
        while True:
            pass
'''


def children_cpu() -> float:
    """CPU seconds of this process's children, living and reaped."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    reaped = os.times()
    return total + reaped.children_user + reaped.children_system


def one_round(method: str) -> tuple[float, float, float]:
    """(first call s, replacement s, replacement CPU s) for a fresh pool of one worker."""
    os.environ[ENV_START_METHOD] = method
    pool = WorkerPool(1)
    try:
        started = time.perf_counter()
        pool.call(TARGET, {"strategy": "sma_cross", "sample": SAMPLE, "record": False}, time_limit=120)
        first = time.perf_counter() - started
        try:
            pool.call(TARGET, {"strategy": "bench_loop.py", "sample": SAMPLE, "record": False},
                      time_limit=0.3)
        except QLMError as err:
            assert err.code == "TIMEOUT", err
        cpu_before = children_cpu()
        started = time.perf_counter()
        pool.call(TARGET, {"strategy": "sma_cross", "sample": SAMPLE, "record": False}, time_limit=120)
        replacement = time.perf_counter() - started
        return first, replacement, children_cpu() - cpu_before
    finally:
        pool.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    strategies = os.path.join(os.environ["QLM_HOME"], "strategies")
    os.makedirs(strategies, exist_ok=True)
    with open(os.path.join(strategies, "bench_loop.py"), "w") as out:
        out.write(LOOP)
    results: dict[str, list[tuple[float, float, float]]] = {"fork": [], "spawn": []}
    for _ in range(args.repeat):
        for method in results:  # interleaved, so machine noise hits both alike
            results[method].append(one_round(method))
    medians = {m: [statistics.median(r[i] for r in rows) for i in range(3)] for m, rows in results.items()}
    print(f"{'':34}{'fork':>10}{'spawn':>10}{'spawn/fork':>12}")
    for i, label in enumerate(("new pool, first call (s)", "replacement after a kill (s)",
                               "replacement CPU (s)")):
        fork, spawn = medians["fork"][i], medians["spawn"][i]
        print(f"{label:34}{fork:10.3f}{spawn:10.3f}{spawn / fork if fork else float('inf'):11.1f}x")


if __name__ == "__main__":
    main()
