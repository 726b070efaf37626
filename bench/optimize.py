"""Optimization benchmark: a 1000-combination SMA-cross grid on 1M bars, indicators computed inside.

Run: ``.venv/bin/python bench/optimize.py [--bars 1000000] [--vbt-combos 20]``. Prints, measured in
this run: QLM's throughput (combos/s), its peak RSS and CPU use (cores busy), a fused bare Numba
loop doing the same work (SMA, crossing, fills) as the reference, a bare Numba sweep that computes
each distinct SMA window once and runs the combos on those cached SMAs (the reference for QLM with its
indicator memo), and vectorbt 1.2's broadcast sweep of a slice of the same grid (signals
precomputed, in a subprocess for its own peak memory).
Targets (issue): >= 20x vectorbt's throughput, peak RSS <= 1.5 GB, both cores busy, QLM >= 0.8 of the
window-caching bare sweep.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import numpy as np
import psutil
from numba import njit, prange

os.environ.setdefault("QLM_HOME", tempfile.mkdtemp(prefix="qlm-bench-"))
os.environ.setdefault("QLM_RECORD_RUNS", "0")

import qlm_kernel as qlm
from qlm_kernel.indicators.memo import memo_from_env

FAST = list(range(5, 55, 5))  # 10 values
SLOW = list(range(20, 220, 2))  # 100 values -> 1000 combinations


@njit(nogil=True, cache=True)
def _sma(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(x.shape[0], np.nan)
    acc = 0.0
    for i in range(x.shape[0]):
        acc += x[i]
        if i >= n:
            acc -= x[i - n]
        if i >= n - 1:
            out[i] = acc / n
    return out


@njit(nogil=True, cache=True)
def _cross_fill(close: np.ndarray, f: np.ndarray, s: np.ndarray, fees: float) -> float:
    """The bare references' crossing and long-only fill logic for one combo on given SMAs: final value."""
    cash = 10_000.0
    pos = 0.0
    for i in range(1, close.shape[0]):
        up = f[i] > s[i] and f[i - 1] <= s[i - 1]
        down = f[i] < s[i] and f[i - 1] >= s[i - 1]
        if pos == 0.0 and up:
            pos = cash / (1.0 + fees) / close[i]
            cash = 0.0
        elif pos > 0.0 and down:
            cash = pos * close[i] * (1.0 - fees)
            pos = 0.0
    return cash + pos * close[-1]


@njit(nogil=True, cache=True, parallel=True)
def bare_grid(close: np.ndarray, fast: np.ndarray, slow: np.ndarray, fees: float) -> np.ndarray:
    """The same work fused and bare: per combo two SMAs, the crossings, long-only fills at the close."""
    out = np.empty(fast.shape[0])
    for j in prange(fast.shape[0]):
        out[j] = _cross_fill(close, _sma(close, fast[j]), _sma(close, slow[j]), fees)
    return out


@njit(nogil=True, cache=True, parallel=True)
def sma_table(close: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """One row per window: each distinct SMA computed once."""
    out = np.empty((windows.shape[0], close.shape[0]))
    for j in prange(windows.shape[0]):
        out[j] = _sma(close, windows[j])
    return out


@njit(nogil=True, cache=True, parallel=True)
def cached_grid(
    close: np.ndarray, table: np.ndarray, fast_row: np.ndarray, slow_row: np.ndarray, fees: float
) -> np.ndarray:
    """Every combo on the cached SMAs (rows of ``table``), same crossing and fills as `bare_grid`."""
    out = np.empty(fast_row.shape[0])
    for j in prange(fast_row.shape[0]):
        out[j] = _cross_fill(close, table[fast_row[j]], table[slow_row[j]], fees)
    return out


def window_cached_sweep(close: np.ndarray, fast: np.ndarray, slow: np.ndarray, fees: float) -> np.ndarray:
    """The grid with each distinct SMA window computed once (the table holds them all)."""
    windows = np.unique(np.concatenate([fast, slow]))
    table = sma_table(close, windows)
    return cached_grid(close, table, np.searchsorted(windows, fast), np.searchsorted(windows, slow), fees)


class Sampler:
    """Peak RSS and CPU time of this process while a block runs."""

    def __enter__(self) -> Sampler:
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.cpu0 = self.proc.cpu_times()
        self.t0 = time.perf_counter()
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        cpu1 = self.proc.cpu_times()
        self.cpu = (cpu1.user - self.cpu0.user) + (cpu1.system - self.cpu0.system)
        self.stop.set()
        self.thread.join()


VBT_CODE = textwrap.dedent(
    """
    import json, resource, sys, time, warnings
    import numpy as np, pandas as pd
    import qlm_kernel as qlm
    import vectorbt as vbt
    warnings.simplefilter("ignore")
    n, k = int(sys.argv[1]), int(sys.argv[2])
    close = qlm.sample_data("synthetic", n=n, seed=0)["close"]
    fast = np.array(%s)[: k]
    slow = np.array(%s)[: k]
    f = vbt.MA.run(close, window=fast.tolist(), short_name="f")
    s = vbt.MA.run(close, window=slow.tolist(), short_name="s")
    entries = f.ma_crossed_above(s)
    exits = f.ma_crossed_below(s)
    t = time.perf_counter()
    pf = vbt.Portfolio.from_signals(close, entries, exits, fees=0.001, init_cash=10_000.0, freq="1h")
    pf.final_value()
    elapsed = time.perf_counter() - t
    print(json.dumps({"seconds": elapsed, "combos": int(k),
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--vbt-combos", type=int, default=20)
    parser.add_argument("--skip-vectorbt", action="store_true")
    args = parser.parse_args()

    df = qlm.sample_data("synthetic", n=args.bars, seed=0)
    close = df["close"].to_numpy()
    space = {"fast": FAST, "slow": SLOW}
    combos = len(FAST) * len(SLOW)
    fast_arr = np.repeat(FAST, len(SLOW)).astype(np.int64)
    slow_arr = np.tile(SLOW, len(FAST)).astype(np.int64)

    qlm.optimize("sma_cross", df.iloc[:5000], space={"fast": [5], "slow": [20]}, record=False)  # warm-up
    with Sampler() as s:
        opt = qlm.optimize(
            "sma_cross", df, space=space, method="grid", objective="sharpe", fees=0.001, record=False
        )
    rate = combos / s.wall
    bare_grid(close[:5000], fast_arr[:2], slow_arr[:2], 0.001)  # compile
    t = time.perf_counter()
    bare = bare_grid(close, fast_arr, slow_arr, 0.001)
    t_bare = time.perf_counter() - t
    lifetime = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # before the cached SMA table
    window_cached_sweep(close[:5000], fast_arr[:2], slow_arr[:2], 0.001)  # compile
    t = time.perf_counter()
    cached = window_cached_sweep(close, fast_arr, slow_arr, 0.001)
    t_cached = time.perf_counter() - t
    n_windows = len(set(FAST) | set(SLOW))
    best = opt.trials.loc[opt.trials["fast"].eq(10) & opt.trials["slow"].eq(50), "final_value"]
    at = FAST.index(10) * len(SLOW) + SLOW.index(50)
    check = bare[at]
    assert cached[at] == check, (cached[at], check)
    if len(best):
        assert abs(float(best.iloc[0]) - check) <= 1e-6 * abs(check), (best.iloc[0], check)

    memo = memo_from_env()
    memo_text = "off" if memo is None else f"on, bound {memo.max_bytes / 2**20:.0f} MB"
    print(f"grid: {combos} SMA-cross combinations on {args.bars:,} bars, indicators computed per combination")
    print(f"(qlm's indicator memo: {memo_text}; set QLM_INDICATOR_MEMO=0 / QLM_INDICATOR_MEMO_MB to change)")
    print(
        f"qlm.optimize          {s.wall:7.2f} s   {rate:8.1f} combos/s   peak RSS {s.peak / 2**30:.2f} GB"
        f"   cores busy {s.cpu / s.wall:.2f}  (targets: RSS <= 1.5 GB, both cores)"
    )
    print(
        f"bare fused numba grid {t_bare:7.2f} s   {combos / t_bare:8.1f} combos/s   "
        f"qlm at {t_bare / s.wall:.0%} of the bare loop's speed"
    )
    print(
        f"bare window-cached    {t_cached:7.2f} s   {combos / t_cached:8.1f} combos/s   "
        f"({n_windows} SMA windows computed once, {n_windows * args.bars * 8 / 2**30:.2f} GB table)"
    )
    print(f"qlm throughput / window-cached bare sweep: {t_cached / s.wall:.2f}   (target >= 0.8)")
    if not args.skip_vectorbt:
        code = VBT_CODE % (FAST * 10, SLOW)
        out = subprocess.run(
            [sys.executable, "-c", code, str(args.bars), str(args.vbt_combos)],
            capture_output=True,
            text=True,
            check=True,
        )
        vbt_run = json.loads(out.stdout.strip().splitlines()[-1])
        vbt_rate = vbt_run["combos"] / vbt_run["seconds"]
        print(
            f"vectorbt from_signals {vbt_run['seconds']:7.2f} s   {vbt_rate:8.1f} combos/s   peak RSS "
            f"{vbt_run['peak_rss'] / 2**30:.2f} GB for {vbt_run['combos']} combos (signals precomputed)"
        )
        print(f"qlm throughput / vectorbt: {rate / vbt_rate:.1f}x   (target >= 20x)")
    print(f"(this process's lifetime peak RSS before the cached SMA table, data and warm-up included: "
          f"{lifetime:.2f} GB)")


if __name__ == "__main__":
    main()
