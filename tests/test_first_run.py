"""The run command on a fresh clone, as a new user types it: the run profile installs QLM and its
runtime dependencies only (no dev extras, no Node on the PATH), shows its steps with their times, and
runs the demo; a second run reuses everything. Timings are printed for the record, not asserted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

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


def test_the_run_command_installs_the_runtime_only_and_runs_the_demo(tmp_path: Path) -> None:
    clone = tmp_path / "qlm"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    base_python = Path(sys._base_executable).resolve()  # the interpreter the venv was made from
    env = {"PATH": path_without_node(tmp_path / "bin"), "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8",
           "PYTHON": str(base_python), "QLM_HOME": str(tmp_path / "workspace")}
    if os.environ.get("QLM_PIP_CACHE"):
        env["PIP_CACHE_DIR"] = os.environ["QLM_PIP_CACHE"]
    runs = []
    for _ in range(2):
        started = time.perf_counter()
        done = subprocess.run(["bash", "scripts/demo.sh"], cwd=clone, env=env, capture_output=True, text=True,
                              timeout=1200, stdin=subprocess.DEVNULL)
        runs.append((time.perf_counter() - started, done))
        assert done.returncode == 0, done.stderr[-3000:]
    (first_s, first), (second_s, second) = runs
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
