"""The overfitting checks on a universe (portfolio mode): walk-forward windows by time, recomputed with
``qlm.backtest_portfolio``; PBO and the deflated Sharpe on a portfolio optimization; lookahead per symbol;
white noise on jointly permuted universes; ``research_loop`` on a universe; ``Universe.between``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel import Param, Signals, Strategy
from qlm_kernel.engine.stats import bars_per_year
from qlm_kernel.errors import DataError
from qlm_kernel.sanity import permuted_universe
from qlm_kernel.session import research_loop, sanity_check

SETTINGS = {"size": 0.3, "size_type": "percent", "fees": 0.001}
LATE = 700  # CCC's first bar (of the 2,000 union bars)


@pytest.fixture(scope="module")
def universe():
    """Three symbols on one hourly calendar; CCC starts late (bar 700) and misses a few bars."""
    names = ("AAA", "BBB", "CCC")
    frames = {s: qlm.sample_data("synthetic", n=2000, seed=40 + k) for k, s in enumerate(names)}
    ccc = frames["CCC"].iloc[LATE:]
    frames["CCC"] = ccc.drop(ccc.index[[100, 101, 500]])
    return qlm.load_universe(frames, name="late3")


class Noise(Strategy):
    """Random entries and exits, drawn from ``seed`` and the symbol's bar count: no skill at all."""

    seed = Param(0, min=0, max=1000)

    def signals(self, data):
        rng = np.random.default_rng([self.seed, len(data)])
        n = len(data)
        return Signals(entry_long=rng.random(n) < 0.05, exit_long=rng.random(n) < 0.05)


class PeekWhenExpensive(Strategy):
    """Reads tomorrow's close, but only on symbols priced above 1,000."""

    def signals(self, data):
        close = data["close"]
        up = (close.shift(-1) > close).fillna(False).astype(bool)
        if close.iloc[0] < 1000:
            up = close > close.rolling(20).mean()
        return Signals(entry_long=up, exit_long=~up)


def test_between_restricts_members_and_drops_absent_symbols(universe):
    t = universe.index
    part = universe.between(t[100], t[LATE - 1])
    assert part.symbols == ("AAA", "BBB") and part.index.equals(t[100:LATE])
    pd.testing.assert_frame_equal(part.frame("AAA"), universe.frame("AAA").loc[t[100] : t[LATE - 1]])
    late = universe.between(t[LATE].tz_convert(None), None)  # naive = UTC, open end
    assert late.symbols == universe.symbols and late.index.equals(t[LATE:])
    assert late.name == universe.name and len(late.frame("CCC")) == len(universe.frame("CCC"))
    assert universe.between().fingerprint == universe.fingerprint
    with pytest.raises(DataError, match="no bar between"):
        universe.between(t[-1] + pd.Timedelta(days=1))


def test_walk_forward_equals_portfolio_backtests_of_each_window(universe):
    space = {"fast": [5, 15], "slow": [40, 80]}
    rep = qlm.sanity.walk_forward("sma_cross", universe, space=space, n_splits=3, **SETTINGS)
    assert rep.name == "walk_forward" and rep.details["portfolio"] is True
    rows = rep.details["splits"]
    everyone = ["AAA", "BBB", "CCC"]
    assert [r["train_symbols"] for r in rows] == [["AAA", "BBB"], everyone, everyone]
    assert rows[0]["test_symbols"] == ["AAA", "BBB", "CCC"]
    bpy = bars_per_year(universe.index)
    edges = np.linspace(0, len(universe), 5).astype(int)
    stitched = []
    for k, row in enumerate(rows):
        lo, hi, end = edges[k], edges[k + 1], edges[k + 2]
        assert (row["train_start"], row["test_start"], row["test_end"]) == (
            universe.index[lo], universe.index[hi], universe.index[end - 1])
        train = universe.between(row["train_start"], row["train_end"])
        opt = qlm.optimize("sma_cross", train, space=space, method="grid", record=False, **SETTINGS)
        assert row["params"] == opt.best_params and row["in_sample"] == opt.best_value
        res = qlm.backtest_portfolio("sma_cross", universe.between(None, row["test_end"]), record=False,
                                     **row["params"], **SETTINGS)
        window = res.equity.to_numpy()[hi - 1 : end]
        returns = window[1:] / window[:-1] - 1.0
        stitched.append(returns)
        assert row["oos_return"] == pytest.approx(window[-1] / window[0] - 1.0, rel=1e-12, abs=1e-15)
        assert row["oos_sharpe"] == pytest.approx(returns.mean() / returns.std(ddof=1) * math.sqrt(bpy),
                                                  rel=1e-9)
    allr = np.concatenate(stitched)
    assert len(allr) == len(universe) - edges[1]
    sharpe = allr.mean() / allr.std(ddof=1) * math.sqrt(bpy)
    assert rep.numbers["oos_sharpe"] == pytest.approx(sharpe, rel=1e-9)
    assert rep.numbers["oos_return"] == pytest.approx(np.prod(1 + allr) - 1, rel=1e-9, abs=1e-12)
    assert rep.to_dict()["details"]["splits"][0]["params"] == rows[0]["params"]


def test_pbo_and_deflated_sharpe_on_a_portfolio_optimization_of_noise(universe):
    opt = qlm.optimize(Noise, universe, space={"seed": list(range(16))}, method="grid", record=False,
                       **SETTINGS)
    matrix = opt.returns_matrix()
    assert matrix.shape == (1024, 16) and np.isfinite(matrix.to_numpy()).all()
    assert matrix.index.isin(universe.index).all()
    rep = qlm.sanity.pbo(opt)
    assert rep.name == "pbo" and set(rep.numbers) >= {"pbo", "n_trials", "n_blocks", "n_combinations",
                                                      "prob_oos_loss", "logit_median"}
    assert rep.numbers["n_trials"] == 16 and rep.numbers["n_combinations"] == 12_870
    assert 0.2 <= rep.numbers["pbo"] <= 0.9
    assert rep.passed is (rep.numbers["pbo"] < 0.5)
    assert set(rep.details) >= {"logit_quantiles", "most_selected", "logit_histogram"}
    dsr = qlm.sanity.deflated_sharpe(opt)
    assert dsr.numbers["n_trials"] == 16 and dsr.numbers["n_obs"] == 1024 and not dsr.passed
    assert rep.to_dict()["numbers"]["pbo"] == rep.numbers["pbo"]


def test_checks_on_a_stored_universe_by_name(home, universe):
    qlm.DataManager().import_universe({s: universe.frame(s) for s in universe.symbols}, "late3")
    space = {"seed": [0, 1, 2, 3]}
    rep = sanity_check("deflated_sharpe", Noise, dataset="late3", space=space, settings=SETTINGS)
    opt = qlm.optimize(Noise, universe, space=space, method="grid", record=False, **SETTINGS)
    assert rep.numbers["n_trials"] == 4
    assert rep.numbers["dsr"] == pytest.approx(qlm.sanity.deflated_sharpe(opt).numbers["dsr"])
    found = sanity_check("lookahead", "sma_cross", dataset="late3", params={"fast": 5, "slow": 30})
    assert found.passed and found.numbers["n_checked"] == 3


def test_lookahead_names_the_symbols_that_cheat(universe):
    frames = {s: universe.frame(s) for s in universe.symbols}
    frames["BBB"] = frames["BBB"] * [1000.0, 1000.0, 1000.0, 1000.0, 1.0]  # prices above 1,000
    mixed = qlm.load_universe(frames, name="mixed")
    rep = qlm.sanity.lookahead(PeekWhenExpensive, mixed)
    assert not rep.passed and rep.details["failed"] == ["BBB"]
    assert rep.numbers == {"n_symbols": 3, "n_checked": 3, "n_failed": 1,
                           "n_differences": rep.details["symbols"]["BBB"]["n_differences"]}
    assert rep.details["first"]["symbol"] == "BBB" and "BBB" in rep.verdict and "1 of 3" in rep.verdict
    assert rep.details["symbols"]["AAA"]["passed"] and rep.details["symbols"]["CCC"]["passed"]
    cheat = qlm.sanity.lookahead(PeekWhenExpensive, {s: f * 1000.0 for s, f in frames.items()})
    assert cheat.details["failed"] == ["AAA", "BBB", "CCC"] and cheat.numbers["n_failed"] == 3
    honest = qlm.sanity.lookahead("sma_cross", universe, fast=5, slow=30)
    assert honest.passed and honest.details["failed"] == [] and "3 symbols" in honest.verdict


def test_white_noise_permutes_symbols_together(universe):
    rng = np.random.default_rng(3)
    noisy = permuted_universe(universe, rng)
    assert noisy.symbols == universe.symbols and noisy.index.equals(universe.index)
    assert (noisy.has_bar == universe.has_bar).all()
    moves = {s: np.diff(np.log(universe.frame(s)["close"].to_numpy())) for s in ("AAA", "BBB")}
    shuffled = {s: np.diff(np.log(noisy.frame(s)["close"].to_numpy())) for s in ("AAA", "BBB")}
    assert not np.allclose(moves["AAA"], shuffled["AAA"])
    pairs = sorted(zip(moves["AAA"].round(12), moves["BBB"].round(12), strict=True))
    assert pairs == sorted(zip(shuffled["AAA"].round(12), shuffled["BBB"].round(12), strict=True))
    ccc = np.diff(np.log(universe.frame("CCC")["close"].to_numpy()))
    new_ccc = np.diff(np.log(noisy.frame("CCC")["close"].to_numpy()))
    assert np.allclose(np.sort(ccc), np.sort(new_ccc))
    rep = qlm.sanity.white_noise("sma_cross", universe, space={"fast": [5, 15], "slow": [40]}, n=3,
                                 **SETTINGS)
    assert rep.name == "white_noise" and rep.details["portfolio"] is True
    assert len(rep.details["noise_best"]) == 3 and rep.numbers["n"] == 3 and not rep.passed
    opt = qlm.optimize("sma_cross", universe, space={"fast": [5, 15], "slow": [40]}, method="grid",
                       record=False, **SETTINGS)
    assert rep.numbers["real_best"] == opt.best_value


def test_research_loop_on_a_universe(universe):
    space = {"fast": [5, 15], "slow": [40, 80]}
    found = research_loop("sma_cross", universe, space=space, train_fraction=0.3, record=False, **SETTINGS)
    assert found["portfolio"] is True and found["dataset"] == "late3" and found["variants"] == 4
    assert found["train"]["bars"] == 600 and found["test"]["bars"] == 1400
    assert found["train"]["symbols"] == ["AAA", "BBB"] and found["test"]["symbols"] == ["AAA", "BBB", "CCC"]
    assert set(found) >= {"best_params", "in_sample", "out_of_sample", "pbo", "deflated_sharpe",
                          "may_be_real", "verdict"}
    assert found["verdict"].startswith("the best of 4 variants") and isinstance(found["may_be_real"], bool)
    test = universe.between(universe.index[600], None)
    oos = qlm.backtest_portfolio("sma_cross", test, record=False, **found["best_params"], **SETTINGS)
    assert found["out_of_sample"]["sharpe"] == pytest.approx(oos.stats["sharpe"])
    train = universe.between(None, universe.index[599])
    opt = qlm.optimize("sma_cross", train, space=space, method="grid", record=False, **SETTINGS)
    assert found["best_params"] == opt.best_params
    assert found["pbo"]["numbers"]["pbo"] == pytest.approx(qlm.sanity.pbo(opt).numbers["pbo"])
