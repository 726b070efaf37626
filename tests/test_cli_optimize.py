"""``qlm optimize``: real subprocesses, a real store in a temp QLM_HOME, resume of a stored job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from qlm_kernel.cli.optimize import parse_constraint, parse_space

ARGS = [
    "optimize",
    "sma_cross",
    "--sample",
    "synthetic",
    "--n",
    "3000",
    "--space",
    "fast=5:20:5",
    "--space",
    "slow=20:60:20",
]


def qlm(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QLM_HOME": str(home), "QLM_RECORD_RUNS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "qlm_kernel.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=home.parent,
        timeout=240,
    )


def test_space_and_constraint_parsing():
    assert parse_space("fast=5:20:5") == ("fast", [5, 10, 15])
    assert parse_space("x=0.1:0.4:0.1") == ("x", [0.1, 0.2, 0.3])
    assert parse_space("mode=a,b") == ("mode", ["a", "b"])
    assert parse_space("slow=20") == ("slow", [20])
    assert parse_constraint("n_trades>=10") == ("n_trades", (">=", 10.0))


def test_optimize_json_then_resume_the_stored_job(tmp_path):
    home = tmp_path / "qlm"
    first = qlm(home, *ARGS, "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["n_trials"] == 6 and doc["n_computed"] == 6 and doc["status"] == "done"
    assert set(doc["best_params"]) == {"fast", "slow"} and doc["job_id"]
    again = qlm(home, *ARGS, "--resume", doc["job_id"], "--json")
    assert again.returncode == 0, again.stderr
    resumed = json.loads(again.stdout)
    assert resumed["job_id"] == doc["job_id"] and resumed["n_computed"] == 0
    assert resumed["best_params"] == doc["best_params"] and resumed["best_value"] == doc["best_value"]
    jobs = qlm(home, "jobs", "show", doc["job_id"], "--json")
    assert jobs.returncode == 0 and json.loads(jobs.stdout)["status"] == "done"


def test_human_output_and_usage_errors(tmp_path):
    home = tmp_path / "qlm"
    out = qlm(home, *ARGS, "--top", "3", "--constraint", "n_trades>=1")
    assert out.returncode == 0, out.stderr
    assert "grid search, 6 trials" in out.stdout and "best sharpe =" in out.stdout
    bad = qlm(home, "optimize", "sma_cross", "--sample", "synthetic", "--space", "fast=20:5")
    assert bad.returncode == 2 and "START < STOP" in bad.stderr
    unknown = qlm(
        home, "optimize", "sma_cross", "--sample", "synthetic", "--n", "500", "--space", "nope=1,2", "--json"
    )
    assert unknown.returncode != 0 and json.loads(unknown.stderr)["type"] in {
        "OptimizationError",
        "ConfigError",
    }


def test_resume_of_an_unknown_job_is_a_clear_error(tmp_path):
    home = tmp_path / "qlm"
    out = qlm(home, *ARGS, "--resume", "doesnotexist", "--json")
    assert out.returncode != 0
    err = json.loads(out.stderr)
    assert err["message"] and err["hint"]
