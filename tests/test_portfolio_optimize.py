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


def test_per_symbol_parameters(universe):
    space = {"fast": [5, 10], "slow": [30, 60]}
    per = qlm.optimize("sma_cross", universe, space=space, per_symbol=True, record=False, **SETTINGS)
    assert set(per.best_params) == set(universe.symbols)
    for sym in universe.symbols:
        alone = qlm.optimize("sma_cross", universe.frame(sym), space=space, record=False, **SETTINGS)
        assert per.best_params[sym] == alone.best_params  # each symbol chosen on its own bars
    assert len(set(map(str, per.best_params.values()))) > 1  # the symbols did not all pick the same
    res = per.backtest(record=False, **SETTINGS)
    strat = qlm.load_strategy("sma_cross")
    chosen = {s: strat(**p) for s, p in per.best_params.items()}
    by_hand = qlm.backtest_portfolio(chosen, universe, record=False, **SETTINGS)
    assert res.stats["final_value"] == by_hand.stats["final_value"]
    assert list(per.table().index) == list(universe.symbols)
    with pytest.raises(OptimizationError, match="single asset"):
        qlm.optimize("sma_cross", universe.frame("AAA"), space=space, per_symbol=True, record=False)
