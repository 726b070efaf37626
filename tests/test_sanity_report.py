"""`qlm.sanity.report`: one verdict from every check that applies, on planted cases.

Pure noise (5 independent data sets, 200 random strategies each): "no evidence of an edge" on all 5, PBO
averaging near 0.5, SPA not significant on at least 4. A planted AR(1) momentum edge traded by a real
strategy through a real optimization: "the edge holds" with SPA p < 0.05, DSR > 0.95 and walk-forward
efficiency > 0.5. The figures, the HTML page and the JSON record are checked too."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel import Param, Signals, Strategy
from qlm_kernel.sanity.overall import HOLDS, NO_EVIDENCE


def noise_matrix(seed: int, periods: int = 1000, trials: int = 200) -> pd.DataFrame:
    """``trials`` random long/flat strategies (positions held ~10 bars) on a random walk's returns."""
    rng = np.random.default_rng(seed)
    moves = rng.normal(0.0, 0.01, periods)
    flips = rng.random((periods, trials)) < 0.1
    position = np.cumsum(flips, axis=0) % 2  # 0/1, changing at random bars
    held = np.vstack([np.zeros((1, trials)), position[:-1]])  # decided before the bar it earns
    return pd.DataFrame(held * moves[:, None])


def test_pure_noise_gives_no_evidence_of_an_edge() -> None:
    pbos, spa = [], []
    for seed in range(5):
        rep = qlm.sanity.report(noise_matrix(100 + seed), reps=300, seed=seed)
        assert rep.passed is False and rep.verdict.startswith(NO_EVIDENCE), rep.verdict
        assert {c.name for c in rep.checks} == {"pbo", "deflated_sharpe", "reality_check"}
        assert "A pass is not proof" in rep.verdict
        pbos.append(rep.check("pbo").numbers["pbo"])
        spa.append(rep.check("reality_check").numbers["spa_pvalue_consistent"])
    assert 0.35 <= float(np.mean(pbos)) <= 0.65, pbos
    assert sum(p >= 0.05 for p in spa) >= 4, spa


class Momentum(Strategy):
    """Long while the last ``window`` bars' returns sum above zero; flat when they sum below."""

    window = Param(1, min=1, max=20)

    def signals(self, data):
        change = data["close"].pct_change().rolling(self.window).sum()
        return Signals(entry_long=(change > 0).to_numpy(), exit_long=(change < 0).to_numpy())


def ar1_frame(n: int = 4000, phi: float = 0.25, seed: int = 8) -> pd.DataFrame:
    """Hourly bars whose returns follow an AR(1) with coefficient ``phi``: a persistent, tradable edge."""
    rng = np.random.default_rng(seed)
    r = np.zeros(n)
    shocks = rng.normal(0.0, 0.005, n)
    for t in range(1, n):
        r[t] = phi * r[t - 1] + shocks[t]
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.concatenate(([close[0]], close[:-1]))
    index = pd.date_range("2022-01-01", periods=n, freq="1h", tz="UTC", name="time")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.0005,
                         "low": np.minimum(open_, close) * 0.9995, "close": close,
                         "volume": np.full(n, 1_000.0)}, index=index)


@pytest.mark.slow
def test_a_planted_momentum_edge_holds(tmp_path) -> None:
    frame = ar1_frame()
    space = {"window": [1, 2, 3, 4, 6, 8]}
    opt = qlm.optimize(Momentum, frame, space=space, record=False)
    rep = qlm.sanity.report(opt, strategy=Momentum, data=frame, reps=300, n_boot=300, n_splits=3)
    names = [c.name for c in rep.checks]
    assert names == ["pbo", "deflated_sharpe", "reality_check", "walk_forward", "bootstrap"]
    assert rep.passed is True and rep.verdict.startswith(HOLDS), rep.verdict
    assert rep.check("reality_check").numbers["spa_pvalue_consistent"] < 0.05
    assert rep.check("deflated_sharpe").numbers["dsr"] > 0.95
    assert rep.check("walk_forward").numbers["efficiency"] > 0.5
    assert rep.numbers["n_failed"] == 0 and rep.numbers["reality_check.spa_pvalue_consistent"] < 0.05
    figures = rep.figures()
    assert set(figures) == set(names)
    assert all(hasattr(f, "to_dict") for f in figures.values())  # plotly figures
    page = rep.to_html()
    assert page.count("<h3>") == len(names) and HOLDS in page
    saved = rep.save_html(tmp_path / "report.html")
    written = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert saved.endswith("report.html") and written.count("<h3>") == len(names) and HOLDS in written
    record = json.loads(json.dumps(rep.to_dict()))
    assert record["passed"] is True and [c["name"] for c in record["checks"]] == names


def test_a_backtest_result_gets_the_bootstrap_and_the_probabilistic_sharpe() -> None:
    res = qlm.backtest(Momentum, ar1_frame(n=3000), window=2, record=False)
    rep = qlm.sanity.report(res, n_boot=200)
    assert [c.name for c in rep.checks] == ["deflated_sharpe", "bootstrap"]
    assert rep.check("deflated_sharpe").numbers["n_trials"] == 1  # not recorded: no ledger to count
    assert rep.check("bootstrap").numbers["sharpe_low"] > 0 and rep.passed is True


def test_a_subject_it_cannot_judge_is_a_clear_error() -> None:
    with pytest.raises(qlm.ConfigError) as err:
        qlm.sanity.report(42)
    assert err.value.code == "BAD_ARGUMENT" and "qlm.sanity.report" in err.value.hint
    with pytest.raises(qlm.OptimizationError) as err:  # a string is a job id
        qlm.sanity.report("not a job")
    assert err.value.code == "NOT_FOUND" and err.value.hint


@pytest.mark.slow
def test_the_report_on_the_cli_and_over_mcp(tmp_path) -> None:
    """`qlm report` (exit 9: no evidence of an edge on a random walk) writes the page; MCP's sanity_check
    with check='report' returns the same record shape."""
    import asyncio
    import os
    import subprocess
    import sys

    from tests.mcp_helpers import http_client, serving, structured

    home = tmp_path / "ws"
    env = {**os.environ, "QLM_HOME": str(home)}
    args = ["report", "sma_cross", "--sample", "synthetic", "--n", "3000", "--space", "fast=5,10",
            "--space", "slow=30,60", "--splits", "2", "--html", str(tmp_path / "r.html"), "--json"]
    done = subprocess.run([sys.executable, "-m", "qlm_kernel.cli", *args], env=env, capture_output=True,
                          text=True, timeout=600)
    out = json.loads(done.stdout)
    assert done.returncode == (0 if out["passed"] else 9), done.stderr[-2000:]
    assert [c["name"] for c in out["checks"]] == ["pbo", "deflated_sharpe", "reality_check", "walk_forward",
                                                  "bootstrap"]
    assert out["html"] and "<h3>walk_forward</h3>" in (tmp_path / "r.html").read_text(encoding="utf-8")

    async def go() -> dict:
        async with http_client(server) as client:
            return structured(await client.call_tool("sanity_check", {
                "strategy": "sma_cross", "check": "report", "sample": {"kind": "synthetic", "n": 2000},
                "space": {"fast": [5, 10], "slow": [30, 60]}, "n_splits": 2}))

    with serving(home) as server:
        record = asyncio.run(go())
    assert record["name"] == "report" and {c["name"] for c in record["checks"]} >= {"pbo", "reality_check"}
    assert record["verdict"].startswith((HOLDS, NO_EVIDENCE))


def test_a_stored_job_is_reported_by_its_id(tmp_path, monkeypatch) -> None:
    """``report(job_id)`` reads the job back (trials, config, sample times) and judges it as the result."""
    monkeypatch.setenv("QLM_HOME", str(tmp_path / "ws"))
    monkeypatch.setenv("QLM_RECORD_RUNS", "1")
    opt = qlm.optimize("sma_cross", sample={"kind": "synthetic", "n": 2000, "seed": 2},
                       space={"fast": [5, 10], "slow": [30, 60]}, record=True)
    assert opt.config["versions"]["numpy"] == np.__version__
    direct = qlm.sanity.report(opt, walk_forward=False, bootstrap=False, reps=200)
    by_id = qlm.sanity.report(opt.job_id, walk_forward=False, bootstrap=False, reps=200)
    assert [c.name for c in by_id.checks] == [c.name for c in direct.checks]
    for name in ("pbo", "deflated_sharpe", "reality_check"):
        assert by_id.check(name).numbers == direct.check(name).numbers, name
    with pytest.raises(qlm.OptimizationError) as err:
        qlm.sanity.report("no-such-job")
    assert err.value.code == "NOT_FOUND"
