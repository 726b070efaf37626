"""qlm_kernel.optimization searches in-process: grid equals individual backtests, random/genetic are
seeded and reproducible, constraints and minimizing work, threads agree, PBO accepts the result."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from qlm_kernel.data import sample_data
from qlm_kernel.errors import ConfigError, OptimizationError
from qlm_kernel.optimization import OptimizationResult, optimize
from qlm_kernel.sanity.pbo import pbo
from qlm_kernel.store import trial_key
from qlm_kernel.strategy import load_strategy
from qlm_kernel.strategy.run import backtest as engine_backtest

PEAK = '''
import numpy as np
from qlm_kernel import Param, Signals, Strategy


class Peak(Strategy):
    """Trades every `period` bars; the period is 1 (most trades) only at x=37, y=61."""

    x = Param(0, min=0, max=99)
    y = Param(0, min=0, max=99)

    def signals(self, data):
        period = 1 + abs(self.x - 37) + abs(self.y - 61)
        phase = np.arange(len(data)) % (2 * period)
        return Signals(entry_long=phase == 0, exit_long=phase == period)
'''

FLAKY = """
from qlm_kernel import Param, Signals, Strategy
from qlm_kernel import indicators as ta


class Flaky(Strategy):
    fast = Param(5, min=2, max=20)
    slow = Param(30, min=10, max=60)

    def signals(self, data):
        if self.fast == 7:
            raise ValueError("seven is unlucky")
        close = data["close"]
        f, s = ta.sma(close, self.fast), ta.sma(close, self.slow)
        return Signals(entry_long=ta.crossed_above(f, s), exit_long=ta.crossed_below(f, s))
"""

SPACE = {"fast": [3, 5, 8, 13], "slow": [20, 30, 50]}
SETTINGS = {"fees": 0.001}


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return sample_data("synthetic", n=4000, seed=3)


@pytest.fixture(scope="module")
def peak_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("opt_strats") / "peak.py"
    path.write_text(PEAK)
    return str(path)


@pytest.fixture(scope="module")
def grid(df) -> OptimizationResult:
    return optimize("sma_cross", df, SPACE, method="grid", record=False, n_jobs=2, **SETTINGS)


def test_grid_trials_equal_individual_backtests(grid, df):
    assert grid.method == "grid" and grid.status == "done" and len(grid.rows) == 12
    assert [r["params"] for r in grid.rows] == [
        {"fast": f, "slow": s} for f in SPACE["fast"] for s in SPACE["slow"]
    ]
    cls = load_strategy("sma_cross")
    for row in grid.rows:
        stats = engine_backtest(cls, df, **row["params"], **SETTINGS).stats
        assert row["stats"]["final_value"] == stats["final_value"]
        assert math.isclose(row["stats"]["sharpe"], stats["sharpe"], rel_tol=0, abs_tol=1e-12)
        assert row["stats"]["n_trades"] == stats["n_trades"]
    table = grid.trials
    assert list(table.columns[:3]) == ["fast", "slow", "sharpe"]
    assert {"feasible", "status", "total_return", "max_drawdown"} <= set(table.columns)
    best = table["sharpe"].idxmax()
    assert grid.best_params == {"fast": table.loc[best, "fast"], "slow": table.loc[best, "slow"]}
    assert grid.best_value == table["sharpe"].max()
    assert grid.best_stats["sharpe"] == grid.best_value


def test_constraints_exclude_and_minimize(df, grid):
    trades = grid.trials["n_trades"]
    bound = float(trades.median())
    res = optimize("sma_cross", df, SPACE, record=False, constraints={"n_trades": ("<", bound)}, **SETTINGS)
    table = res.trials
    assert (table["feasible"] == (table["n_trades"] < bound)).all()
    assert res.best_value == table.loc[table["feasible"], "sharpe"].max()
    assert res.best_stats["n_trades"] < bound
    res = optimize("sma_cross", df, SPACE, record=False, objective="total_return", maximize=False, **SETTINGS)
    assert res.best_value == res.trials["total_return"].min() and not res.maximize
    call = optimize("sma_cross", df, SPACE, record=False, constraints=lambda s: s["n_trades"] > 1e9)
    assert call.best_params is None and not call.trials["feasible"].any()


def test_threads_agree_with_one_thread(df, grid):
    one = optimize("sma_cross", df, SPACE, method="grid", record=False, n_jobs=1, batch_size=5, **SETTINGS)
    pd.testing.assert_frame_equal(one.trials, grid.trials)
    assert [r["equity"] for r in one.rows] == [r["equity"] for r in grid.rows]


def test_random_is_distinct_and_seeded(df):
    space = {"fast": range(2, 30), "slow": range(30, 90, 5)}
    a = optimize("sma_cross", df, space, method="random", n_trials=25, seed=7, record=False)
    b = optimize("sma_cross", df, space, method="random", n_trials=25, seed=7, record=False)
    c = optimize("sma_cross", df, space, method="random", n_trials=25, seed=8, record=False)
    keys = [trial_key(r["params"]) for r in a.rows]
    assert len(keys) == 25 == len(set(keys))
    pd.testing.assert_frame_equal(a.trials, b.trials)
    assert keys != [trial_key(r["params"]) for r in c.rows]


def test_genetic_finds_known_optimum_reproducibly(df, peak_file):
    kw = {"objective": "n_trades", "record": False, "n_trials": 600, "seed": 1, "patience": 8}
    a = optimize(peak_file, df, method="auto", **kw)
    assert a.method == "genetic" and a.config["method_requested"] == "auto"  # 100 x 100 > 5000
    keys = [trial_key(r["params"]) for r in a.rows]
    assert len(keys) == len(set(keys)) <= 600
    assert abs(a.best_params["x"] - 37) + abs(a.best_params["y"] - 61) <= 2
    b = optimize(peak_file, df, method="genetic", **kw)
    pd.testing.assert_frame_equal(a.trials, b.trials)
    assert a.best_params == b.best_params


def test_auto_picks_grid_for_small_spaces_and_declared_grids(df, peak_file):
    res = optimize(peak_file, df, {"x": [36, 37], "y": None}, objective="n_trades", record=False)
    assert res.method == "grid" and len(res.rows) == 200
    assert res.best_params == {"x": 37, "y": 61}


def test_strategy_errors_mark_trials(df, tmp_path):
    path = tmp_path / "flaky.py"
    path.write_text(FLAKY)
    res = optimize(str(path), df, {"fast": [5, 7, 9], "slow": [30]}, record=False)
    assert list(res.trials["status"]) == ["ok", "error", "ok"]
    assert res.rows[1]["error"]["type"] == "StrategyError" and "unlucky" in res.rows[1]["error"]["message"]
    assert not res.trials["feasible"][1]
    with pytest.raises(Exception, match="unlucky"):
        optimize(str(path), df, {"fast": [7], "slow": [30, 40]}, record=False)


def test_bad_inputs_raise_clear_errors(df):
    with pytest.raises(OptimizationError, match="no parameter") as info:
        optimize("sma_cross", df, {"fats": [1]}, record=False)
    assert "fast" in info.value.hint and "slow" in info.value.hint
    with pytest.raises(ConfigError, match="out of range"):
        optimize("sma_cross", df, {"fast": [1, 2]}, record=False)
    with pytest.raises(OptimizationError, match="objective"):
        optimize("sma_cross", df, SPACE, objective="sharp", record=False)
    with pytest.raises(OptimizationError, match="method"):
        optimize("sma_cross", df, SPACE, method="anneal", record=False)
    with pytest.raises(OptimizationError, match="unknown keyword"):
        optimize("sma_cross", df, SPACE, fast=3, record=False)


def test_returns_matrix_feeds_pbo_and_plots(grid):
    mat = grid.returns_matrix()
    assert mat.shape == (1024, 12) and np.isfinite(mat.to_numpy()).all()
    report = pbo(grid, n_blocks=8)
    assert 0.0 <= report.numbers["pbo"] <= 1.0
    fig = grid.plot_heatmap()
    assert fig.data[0].type == "heatmap" and len(fig.data[0].x) == 4
    assert grid.plot_parallel().data[0].type == "parcoords"
    assert "<table" in grid._repr_html_() and "best" in grid._repr_html_()
    d = grid.to_dict(include_trials=True)
    json.dumps(d, allow_nan=False)
    assert d["n_trials"] == 12 and d["best_params"] == grid.best_params


def test_space_values_are_deduplicated_in_linear_time_keeping_order() -> None:
    from qlm_kernel.optimization.space import unique_values

    class Counted:
        """A hashable value counting equality tests (the old list scan made n*(n-1)/2 of them)."""

        comparisons = 0

        def __init__(self, v: int) -> None:
            self.v = v

        def __hash__(self) -> int:
            return hash(self.v)

        def __eq__(self, other: object) -> bool:
            Counted.comparisons += 1
            return isinstance(other, Counted) and other.v == self.v

    assert unique_values([5, 3, 5, 1, 3, [2], [2], 7]) == [5, 3, 1, [2], 7]
    values = [Counted(i) for i in range(2000)] * 2
    assert [c.v for c in unique_values(values)] == list(range(2000))
    assert Counted.comparisons <= 2 * len(values)  # a constant per value, not ~2,000,000


def test_a_best_result_resting_on_few_trades_is_flagged_everywhere(home) -> None:
    """The issue's case: the optimizer crowning a 2-trade result without a word."""
    import qlm_kernel as qlm
    from qlm_kernel.cli.optimize import human_summary
    from qlm_kernel.mcp import tools

    sample = {"kind": "synthetic", "n": 400, "seed": 3}
    few = qlm.optimize("sma_cross", sample=sample, space={"fast": [20, 30], "slow": [150, 200]}, record=False)
    assert few.best_stats["n_trades"] < 30
    [warning] = few.warnings
    assert warning["code"] == "FEW_TRADES" and warning["n_trades"] == few.best_stats["n_trades"]
    assert few.to_dict()["warnings"] == [warning]
    assert "FEW_TRADES" not in human_summary(few, 3) and warning["message"] in human_summary(few, 3)
    assert warning["message"] in few._repr_html_()
    over_mcp = tools.optimize_parameters("sma_cross", {"fast": [20, 30], "slow": [150, 200]}, sample=sample)
    assert [w["code"] for w in over_mcp["warnings"]] == ["FEW_TRADES"]
    many = qlm.optimize("sma_cross", sample={"kind": "synthetic", "n": 20_000, "seed": 3},
                        space={"fast": [5, 10], "slow": [30, 60]}, record=False)
    assert many.best_stats["n_trades"] >= 30 and many.warnings == []
