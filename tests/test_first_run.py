"""The run command on a fresh clone, as a new user types it: the run profile installs QLM and its
runtime dependencies only (no dev extras, no Node on the PATH), shows its steps with their times, and
runs the demo; a second run reuses everything. Timings are printed for the record, not asserted.

The same clone also shows what ``qlm warmup`` (which the run profile's set-up runs) leaves behind:
every engine mode compiled ahead of time into Numba's disk cache, in parallel processes, so a new
process's first backtest (stops on, 100k bars) loads every kernel and compiles none. The fresh clone's
cache starts empty, so this is the cold compile; it is done once for both tests (it is the suite's
single most expensive step).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DEV_ONLY = ("pytest", "hypothesis", "vectorbt", "backtesting", "ruff", "dask", "ccxt", "jupyterlab", "voila",
            "nbval", "playwright", "import-linter", "pytest-jupyter")
TOOLS = ("bash", "sh", "git", "sha256sum", "cut", "cat", "grep", "env", "mkdir", "dirname", "uname", "rm",
         "ls", "sed", "tr", "head", "tail", "sort", "printf", "id", "readlink", "basename")


def path_without_node(bin_dir: Path) -> str:
    """A PATH holding only the shell tools the scripts use (Node, npm and jlpm are not among them)."""
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    assert shutil.which("node", path=str(bin_dir)) is None
    return str(bin_dir)


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
from qlm_kernel.indicators import _kernels as ik, memo
from qlm_kernel.session.warmup import _compile_indicators
_compile_indicators(qlm.sample_data("synthetic", n=300, seed=1))  # every indicator: none may compile
kernels_nb = {name: getattr(ik, name) for name in dir(ik) if name.endswith("_nb")}
entries.update({**kernels_nb, "memo_checksum": memo._checksum_nb})
import numpy as np
rng, frame = np.random.default_rng(0), qlm.sample_data("synthetic", n=500, seed=2)
for frozen in (True, False):  # read-only and writable signal arrays: the same compiled kernels
    sig = {k: rng.random(500) < 0.05 for k in ("entry_long", "exit_long", "entry_short", "exit_short")}
    for v in sig.values():
        v.flags.writeable = not frozen
    for kw in ({"sl_stop": 0.02, "direction": "both"}, {"fill": "next_open"}, {"leverage": 2.0}):
        qlm.backtest(qlm.Signals(**sig), frame, record=False, **kw).stats
loaded = {name: sum(d.stats.cache_hits.values()) for name, d in entries.items()}
misses = {name: sum(d.stats.cache_misses.values()) for name, d in entries.items()}
print(json.dumps({"seconds": seconds, "kernel_compiles": sum(misses.values()), "loaded": loaded,
                  "compiled": [name for name, k in misses.items() if k]}))
"""


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A fresh clone where the run command ran twice: ``clone``, ``env`` and the two runs ``(seconds,
    completed process)``."""
    tmp_path = tmp_path_factory.mktemp("first-run")
    clone = tmp_path / "qlm"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    base_python = Path(sys._base_executable).resolve()  # the interpreter the venv was made from
    env = {"PATH": path_without_node(tmp_path / "bin"), "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8",
           "PYTHON": str(base_python), "QLM_HOME": str(tmp_path / "workspace"),
           "PIP_COMPILE": "0"}  # pip skips byte-compiling every installed file; Python writes what it imports
    if os.environ.get("QLM_PIP_CACHE"):
        env["PIP_CACHE_DIR"] = os.environ["QLM_PIP_CACHE"]
    runs = []
    for _ in range(2):
        started = time.perf_counter()
        done = subprocess.run(["bash", "scripts/demo.sh"], cwd=clone, env=env, capture_output=True, text=True,
                              timeout=1200, stdin=subprocess.DEVNULL)
        runs.append((time.perf_counter() - started, done))
        assert done.returncode == 0, done.stderr[-3000:]
    return {"clone": clone, "env": env, "runs": runs}


def test_the_run_command_installs_the_runtime_only_and_runs_the_demo(first_run: dict[str, Any]) -> None:
    clone, env = first_run["clone"], first_run["env"]
    (first_s, first), (second_s, second) = first_run["runs"]
    assert "installing qlm-kernel and its runtime dependencies (no dev extras): done in" in first.stderr
    assert "setup:" not in second.stderr  # nothing to install the second time
    for run in (first, second):
        assert "total return" in run.stdout.lower() and (clone / "reports" / "quickstart.html").is_file()
        assert "verdict: the best of 100 variants" in run.stdout  # the research loop's answer
    listed = subprocess.run([str(clone / ".venv/bin/python"), "-m", "pip", "list", "--format=json"], env=env,
                            capture_output=True, text=True, check=True)
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "qlm-kernel" in installed
    assert not installed & set(DEV_ONLY), installed & set(DEV_ONLY)
    assert not (clone / "extensions/qlm-jupyterlab/node_modules").exists()  # no extension build
    started = time.perf_counter()
    subprocess.run([str(clone / ".venv/bin/qlm"), "strategies", "list"], env=env, check=True,
                   capture_output=True)
    listing_s = time.perf_counter() - started
    print(f"\nfirst run {first_s:.1f} s, second run {second_s:.1f} s, qlm strategies list {listing_s:.2f} s")


def test_warmup_filled_the_cache_so_a_first_backtest_compiles_nothing(first_run: dict[str, Any]) -> None:
    clone, env = first_run["clone"], first_run["env"]
    first = first_run["runs"][0][1]
    assert "compiling the engine (every mode, on all cores; cached on disk): done in" in first.stderr
    python = str(clone / ".venv/bin/python")
    warm = subprocess.run([python, "-m", "qlm_kernel.cli", "warmup", "--json"], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=600)
    assert warm.returncode == 0, warm.stderr[-2000:]
    report = json.loads(warm.stdout)
    assert report["modes"] == 12 and report["processes"] == min(12, os.cpu_count() or 1)
    assert report["portfolio_modes"] == 2
    indexes = list((clone / "qlm_kernel").rglob("kernels*.nbi"))
    assert len(indexes) >= 12  # one cache index per mode entry
    done = subprocess.run([python, "-c", FIRST_BACKTEST], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["kernel_compiles"] == 0, result["compiled"]
    assert len(result["loaded"]) >= 16 + 14 and all(hits >= 1 for hits in result["loaded"].values()), result
    print(f"\nqlm warmup on the warm cache {report['seconds']:.1f} s; then a new process's first backtest "
          f"with stops on 100k bars {result['seconds']:.2f} s")
