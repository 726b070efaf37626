"""Honest selection: ``min_trades=`` makes a trial with fewer trades infeasible (never the best), in
Python, on the CLI and over MCP (a real stdio client); the best carries its trade count, and a best
resting on fewer than 30 trades still carries the FEW_TRADES warning."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client

import qlm_kernel as qlm
from qlm_kernel.optimization.api import with_min_trades
from tests.mcp_helpers import stdio_params, structured

SAMPLE = {"kind": "synthetic", "n": 3000, "seed": 3}
SPACE = {"fast": [5, 20], "slow": [30, 400]}  # slow=400 crosses rarely: few trades


def test_min_trades_excludes_thin_trials_from_the_best() -> None:
    free = qlm.optimize("sma_cross", sample=SAMPLE, space=SPACE, record=False)
    trades = free.trials["n_trades"]
    threshold = int(trades.median()) + 1  # some trials below, some above
    assert (trades < threshold).any() and (trades >= threshold).any()
    held = qlm.optimize("sma_cross", sample=SAMPLE, space=SPACE, record=False, min_trades=threshold)
    table = held.trials
    assert (table.loc[table["n_trades"] < threshold, "feasible"] == False).all()  # noqa: E712
    assert held.best_trades is not None and held.best_trades >= threshold
    assert held.best_trades == held.best_stats["n_trades"]
    out = held.to_dict()
    assert out["best_trades"] == held.best_trades and out["min_trades"] == threshold
    assert held.config["constraints"] == {"n_trades": [">=", threshold]}
    few = [w for w in held.warnings if w["code"] == "FEW_TRADES"]
    assert bool(few) == (held.best_trades < 30)


def test_min_trades_joins_other_constraints_and_is_checked() -> None:
    assert with_min_trades(None, 10) == {"n_trades": (">=", 10)}
    assert with_min_trades({"n_trades": (">=", 40)}, 10) == {"n_trades": (">=", 40)}  # the stricter
    assert with_min_trades({"sharpe": (">", 0)}, 5) == {"sharpe": (">", 0), "n_trades": (">=", 5)}
    rule = with_min_trades(lambda s: s["sharpe"] > 0, 5)
    assert rule({"sharpe": 1.0, "n_trades": 5}) and not rule({"sharpe": 1.0, "n_trades": 4})
    upper = with_min_trades({"n_trades": ("<=", 100)}, 5)
    assert upper({"n_trades": 50}) and not upper({"n_trades": 4}) and not upper({"n_trades": 101})
    for bad in (-1, 2.5, True, "10"):
        with pytest.raises(qlm.OptimizationError) as err:
            qlm.optimize("sma_cross", sample=SAMPLE, space=SPACE, record=False, min_trades=bad)
        assert err.value.code == "BAD_ARGUMENT"


def test_min_trades_on_the_cli_and_over_mcp(tmp_path: Path) -> None:
    env = {**os.environ, "QLM_HOME": str(tmp_path / "ws")}
    args = ["optimize", "sma_cross", "--sample", "synthetic", "--n", "3000", "--seed", "3", "--space",
            "fast=5,20", "--space", "slow=30,400", "--min-trades", "25", "--json"]
    done = subprocess.run([sys.executable, "-m", "qlm_kernel.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["min_trades"] == 25 and out["best_trades"] >= 25

    async def over_mcp() -> tuple[dict, dict]:
        async with Client(stdio_params(str(tmp_path / "mcp-ws"))) as client:
            listed = {t.name: t for t in (await client.list_tools()).tools}
            reply = await client.call_tool("optimize_parameters", {
                "strategy": "sma_cross", "sample": SAMPLE, "space": SPACE, "min_trades": 25})
            return listed["optimize_parameters"].input_schema, structured(reply)

    schema, job = asyncio.run(over_mcp())
    assert "min_trades" in schema["properties"]
    assert job["status"] == "done" and job["min_trades"] == 25 and job["best_trades"] >= 25
