"""``qlm warmup`` compiles every engine mode ahead of time, in parallel processes, into Numba's disk
cache: a new process's first backtest (stops on, 100k bars) then loads every kernel and compiles none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FIRST_BACKTEST = """
import json, time
started = time.perf_counter()
import qlm_kernel as qlm
from qlm_kernel.engine import kernels
res = qlm.backtest("sma_cross", sample={"kind": "synthetic", "n": 100_000}, sl_stop=0.03, fees=0.001,
                   record=False)
res.stats
seconds = time.perf_counter() - started
from qlm_kernel.session.warmup import MODES, PORTFOLIO_MODES, compile_modes
compile_modes(list(MODES + PORTFOLIO_MODES))  # then every other mode: none may compile either
from qlm_kernel.engine import group_kernels, group_signals, weight_kernels
entries = {**{str(m): d for m, d in kernels.MODE_ENTRIES.items()}, "group": group_kernels.simulate_group,
           "signal_codes": group_signals.signal_codes, "weights": weight_kernels.simulate_weights,
           "exit_trades": weight_kernels.exit_trades}
loaded = {name: sum(d.stats.cache_hits.values()) for name, d in entries.items()}
misses = sum(sum(d.stats.cache_misses.values()) for d in entries.values())
print(json.dumps({"seconds": seconds, "kernel_compiles": misses, "loaded": loaded}))
"""


def test_warmup_fills_the_cache_so_a_first_backtest_compiles_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"), "QLM_HOME": str(tmp_path / "ws")}
    started = time.perf_counter()
    warm = subprocess.run([sys.executable, "-m", "qlm_kernel.cli", "warmup", "--json"], env=env,
                          capture_output=True, text=True, timeout=900)
    warm_s = time.perf_counter() - started
    assert warm.returncode == 0, warm.stderr[-2000:]
    report = json.loads(warm.stdout)
    assert report["modes"] == 12 and report["processes"] == min(12, os.cpu_count() or 1)
    assert report["portfolio_modes"] == 2
    indexes = list((tmp_path / "numba-cache").rglob("kernels*.nbi"))
    assert len(indexes) >= 12  # one cache index per mode entry
    first = subprocess.run([sys.executable, "-c", FIRST_BACKTEST], env=env, capture_output=True, text=True,
                           timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    result = json.loads(first.stdout.strip().splitlines()[-1])
    assert result["kernel_compiles"] == 0
    assert len(result["loaded"]) == 16 and all(hits >= 1 for hits in result["loaded"].values())
    print(f"\nqlm warmup (cold cache) {warm_s:.1f} s; then a new process's first backtest with stops on "
          f"100k bars {result['seconds']:.2f} s")
