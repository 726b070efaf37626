"""qlm.optimize over a universe: one parameter set for every symbol, shared cash; each trial equals the
recorded portfolio backtest with those parameters, and the best is the brute-force best."""

from __future__ import annotations

import pytest

import qlm_kernel as qlm
from qlm_kernel.errors import OptimizationError


@pytest.fixture(scope="module")
def universe():
    names = ("AAA", "BBB", "CCC")
    frames = {s: qlm.sample_data("synthetic", n=1500, seed=90 + k) for k, s in enumerate(names)}
    return qlm.load_universe(frames, name="trio")


SETTINGS = {"size": 0.3, "size_type": "percent", "fees": 0.001}


def test_grid_over_a_universe_equals_portfolio_backtests(universe):
    space = {"fast": [5, 10, 15], "slow": [30, 60]}
    opt = qlm.optimize("sma_cross", universe, space=space, record=False, **SETTINGS)
    rows = {tuple(r["params"].values()): r for r in opt.rows}
    assert len(rows) == 6
    brute = {}
    for fast in space["fast"]:
        for slow in space["slow"]:
            res = qlm.backtest_portfolio("sma_cross", universe, fast=fast, slow=slow, record=False,
                                         **SETTINGS)
            brute[(fast, slow)] = res.stats["sharpe"]
            row = rows[(fast, slow)]["stats"]
            assert row["final_value"] == res.stats["final_value"]
            assert row["n_trades"] == res.stats["n_trades"]
            assert row["sharpe"] == res.stats["sharpe"]
    best = max(brute, key=brute.get)
    assert tuple(opt.best_params.values()) == best
    assert len(set(brute.values())) == 6  # the trials really differ


def test_stored_universe_by_name_in_a_recorded_job(tmp_path, monkeypatch, universe):
    monkeypatch.setenv("QLM_HOME", str(tmp_path / "home"))
    qlm.DataManager().import_universe({s: universe.frame(s) for s in universe.symbols}, "trio")
    opt = qlm.optimize("sma_cross", dataset="trio", space={"fast": [5, 10], "slow": [30]}, **SETTINGS)
    assert opt.config["dataset"] == "trio"
    assert opt.config["data_fingerprint"] == universe.fingerprint
    assert opt.job_id is not None
    with pytest.raises(OptimizationError, match="Dask"):
        qlm.optimize("sma_cross", universe, space={"fast": [5]}, executor=object(), record=False)
