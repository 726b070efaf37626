"""The overfitting checks on constructed cases, end to end through qlm.optimize.

A planted, persistent edge (momentum in AR(1) returns) passes every check; the same search on a
pure random walk is flagged (high PBO, insignificant deflated Sharpe, noise does as well).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel.sanity import permuted_ohlcv

MOMENTUM = '''
from qlm_kernel import Param, Signals, Strategy


class Momentum(Strategy):
    """Long after a rise over `lookback` bars, short after a fall (or the reverse when contrarian)."""

    lookback = Param(1, choices=[1, 2, 3, 5, 8])
    mode = Param("momentum", choices=["momentum", "contrarian"])

    def signals(self, data):
        change = data["close"].pct_change(self.lookback)
        up = (change > 0).to_numpy()
        down = (change < 0).to_numpy()
        if self.mode == "contrarian":
            up, down = down, up
        return Signals(entry_long=up, exit_long=down, entry_short=down, exit_short=up)
'''


def market(n: int, autocorrelation: float, seed: int) -> pd.DataFrame:
    """Hourly OHLCV whose log returns follow an AR(1) with the given coefficient (0: random walk)."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(0, 0.004, n)
    r = np.empty(n)
    r[0] = eps[0]
    for t in range(1, n):
        r[t] = autocorrelation * r[t - 1] + eps[t]
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n))
    index = pd.date_range("2022-01-01", periods=n, freq="1h", tz="UTC", name="time")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 1.0}, index=index)


# Momentum variants only: mirrored contrarian trials (Sharpe -x next to +x) would inflate the
# spread of trial Sharpes from which the deflated Sharpe estimates its bar (conservative by design).
SPACE = {"mode": ["momentum"], "lookback": None}


@pytest.fixture(scope="module")
def strategy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("strategies") / "momentum.py"
    path.write_text(MOMENTUM)
    return str(path)


@pytest.fixture(scope="module")
def edge():
    return market(4000, 0.35, seed=1)


@pytest.fixture(scope="module")
def noise():
    return market(4000, 0.0, seed=2)


def test_permuted_data_keeps_moves_and_candles_but_not_their_order(edge):
    shuffled = permuted_ohlcv(edge, np.random.default_rng(0))
    r_real = np.diff(np.log(edge["close"].to_numpy()))
    r_perm = np.diff(np.log(shuffled["close"].to_numpy()))
    np.testing.assert_allclose(np.sort(r_real), np.sort(r_perm), rtol=1e-9, atol=1e-12)
    assert not np.allclose(r_real, r_perm)
    assert (shuffled["high"] >= shuffled[["open", "close"]].max(axis=1) - 1e-9).all()
    assert (shuffled["low"] <= shuffled[["open", "close"]].min(axis=1) + 1e-9).all()
    lag1 = np.corrcoef(r_perm[1:], r_perm[:-1])[0, 1]
    assert abs(lag1) < 0.1 < np.corrcoef(r_real[1:], r_real[:-1])[0, 1]


def test_planted_edge_passes_every_check(strategy_file, edge):
    full = qlm.optimize(strategy_file, edge, method="grid", record=False)
    assert full.best_params == {"lookback": 1, "mode": "momentum"}
    assert qlm.sanity.pbo(full, n_blocks=8).passed
    opt = qlm.optimize(strategy_file, edge, space=SPACE, record=False)
    assert qlm.sanity.pbo(opt, n_blocks=8).passed
    assert qlm.sanity.deflated_sharpe(opt).passed
    assert qlm.sanity.white_noise(strategy_file, edge, SPACE, n=39, seed=3).passed
    wf = qlm.sanity.walk_forward(strategy_file, edge, SPACE, n_splits=3)
    assert wf.passed and wf.numbers["oos_sharpe"] > 0
    assert qlm.sanity.lookahead(strategy_file, edge).passed


def test_pure_noise_is_flagged(strategy_file, noise):
    opt = qlm.optimize(strategy_file, noise, space=SPACE, record=False)
    pbo = qlm.sanity.pbo(opt, n_blocks=8)
    assert pbo.numbers["pbo"] > 0.5 and not pbo.passed
    assert not qlm.sanity.deflated_sharpe(opt).passed
    assert not qlm.sanity.white_noise(strategy_file, noise, SPACE, n=39, seed=3).passed


def test_peeking_strategy_is_caught(tmp_path, edge):
    path = tmp_path / "peek.py"
    path.write_text(
        MOMENTUM.replace(
            'data["close"].pct_change(self.lookback)', 'data["close"].pct_change(self.lookback).shift(-1)'
        )
    )
    report = qlm.sanity.lookahead(str(path), edge)
    assert not report.passed and report.details["first"]["field"] in {
        "entry_long",
        "exit_long",
        "entry_short",
        "exit_short",
    }


def test_anchored_walk_forward_reports_every_split(strategy_file, edge):
    wf = qlm.sanity.walk_forward(strategy_file, edge, SPACE, n_splits=4, mode="anchored")
    splits = wf.details["splits"]
    assert wf.passed and len(splits) == 4
    assert all(s["train_start"] == edge.index[0] for s in splits)  # anchored: every window starts at bar 0
    assert all(s["test_start"] > s["train_end"] for s in splits)
    assert json.loads(wf.to_json())["name"] == "walk_forward"
