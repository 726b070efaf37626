"""Reality checks (`qlm.sanity.reality_check`: arch's SPA, White's reality check, StepM) on planted
cases: random-signal strategies on noise are not significant, strategies that follow a real AR(1)
momentum are, and StepM names exactly them; an optimization goes through against zero and buy and
hold; same seed, same p-values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel.errors import ConfigError
from qlm_kernel.sanity import SanityReport, reality_check

T, N = 1000, 200
N_EDGE = 8


def noise_strategies(seed: int) -> np.ndarray:
    """(T x N) returns of N strategies holding random positions (-1, 0, +1 a bar) on a random walk."""
    rng = np.random.default_rng(seed)
    price_returns = rng.normal(0.0, 0.01, T)
    positions = rng.choice([-1.0, 0.0, 1.0], size=(T, N))
    return positions * price_returns[:, None]


def momentum_strategies(seed: int, phi: float = 0.2) -> np.ndarray:
    """Returns follow an AR(1) with coefficient ``phi``; the first `N_EDGE` strategies hold the sign of
    the last return (each flat on a random 10% of bars), the other N - N_EDGE hold random positions."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, 0.01, T + 1)
    r = np.empty(T + 1)
    r[0] = shocks[0]
    for t in range(1, T + 1):
        r[t] = phi * r[t - 1] + shocks[t]
    positions = rng.choice([-1.0, 0.0, 1.0], size=(T, N))
    positions[:, :N_EDGE] = np.sign(r[:-1])[:, None] * (rng.random((T, N_EDGE)) > 0.1)
    return positions * r[1:, None]


def test_noise_is_not_significant():
    pvalues = []
    for seed in range(5):
        rep = reality_check(noise_strategies(seed), seed=seed)
        assert isinstance(rep, SanityReport) and rep.name == "reality_check"
        assert rep.numbers["n_trials"] == N and rep.numbers["n_periods"] == T
        pvalues.append(rep.numbers["spa_pvalue_consistent"])
        n = rep.numbers
        assert n["spa_pvalue_lower"] <= n["spa_pvalue_consistent"] <= n["spa_pvalue_upper"]
        if not rep.passed:
            assert rep.verdict.startswith(f"no evidence any of the {N} variants beats zero")
    # measured (seed 0..4): 0.27, 0.47, 0.60, 0.23, 0.87
    assert sum(p >= 0.05 for p in pvalues) >= 4, pvalues


def test_planted_momentum_is_found_and_stepm_names_the_followers():
    for seed in (0, 1):
        rep = reality_check(momentum_strategies(seed), seed=seed)
        # measured: SPA consistent p = 0.000, White's RC p = 0.000 on both seeds
        assert rep.passed and rep.numbers["spa_pvalue_consistent"] < 0.05
        assert rep.numbers["rc_pvalue"] < 0.05
        found = sorted(d["trial"] for d in rep.details["superior"])
        assert found == list(range(N_EDGE))  # exactly the momentum followers, no random one
        assert rep.numbers["n_superior"] == N_EDGE
        assert rep.numbers["best_trial"] < N_EDGE
        assert rep.verdict.startswith(f"the best of {N} variants beats zero")


def test_same_seed_same_pvalues():
    m = noise_strategies(11)[:, :40]
    a = reality_check(m, seed=3, reps=300)
    b = reality_check(m, seed=3, reps=300)
    assert a.numbers == b.numbers and a.details == b.details
    c = reality_check(m, seed=4, reps=300)
    assert c.numbers["spa_pvalue_consistent"] != a.numbers["spa_pvalue_consistent"] or (
        c.numbers["rc_pvalue"] != a.numbers["rc_pvalue"]
    )


def test_benchmark_array_and_frame_labels():
    """A strategy that is the benchmark plus a drift beats that benchmark; labels come from columns."""
    rng = np.random.default_rng(5)
    bench = rng.normal(0.0, 0.01, T)
    frame = pd.DataFrame(
        {"copy": bench, "copy_plus": bench + 0.002, "random": rng.normal(0.0, 0.01, T)},
        index=pd.date_range("2021-01-01", periods=T, freq="D"),
    )
    rep = reality_check(frame, benchmark=bench, seed=0, reps=500)
    assert rep.passed and rep.numbers["benchmark"] == "custom"
    assert [d["trial"] for d in rep.details["superior"]] == ["copy_plus"]
    assert rep.details["n_identical_to_benchmark"] == 1
    # buy and hold from a close series indexed by the frame's timestamps plus the bar before
    close = pd.Series(
        100.0 * np.cumprod(np.concatenate(([1.0], 1.0 + bench))),
        index=pd.date_range("2020-12-31", periods=T + 1, freq="D"),
    )
    bh = reality_check(frame, benchmark="buy_and_hold", close=close, seed=0, reps=500)
    for key in ("spa_pvalue_consistent", "rc_pvalue", "n_superior", "best_trial"):
        assert bh.numbers[key] == rep.numbers[key], key
    assert bh.numbers["best_mean_excess"] == pytest.approx(0.002, rel=1e-9)


def test_nothing_differs_from_the_benchmark():
    rep = reality_check(np.zeros((100, 3)), seed=0)
    assert not rep.passed and rep.numbers["spa_pvalue_consistent"] == 1.0
    assert "differs" in rep.verdict


@pytest.fixture(scope="module")
def opt_and_data():
    df = qlm.sample_data("synthetic", n=2000, seed=1)
    opt = qlm.optimize("sma_cross", df, {"fast": [5, 10], "slow": [30, 50]}, record=False)
    return opt, df


def test_optimization_against_zero_and_buy_and_hold(opt_and_data):
    opt, df = opt_and_data
    zero = reality_check(opt, seed=0, reps=500)
    assert zero.numbers["n_trials"] == 4 and zero.numbers["n_periods"] == len(opt.returns_matrix())
    assert "parameter sets" in zero.verdict
    for d in zero.details["superior"]:
        assert set(d["params"]) == {"fast", "slow"}
    assert set(zero.details["best"]["params"]) == {"fast", "slow"}
    json.loads(zero.to_json())
    bh = reality_check(opt, "buy_and_hold", close=df["close"], seed=0, reps=500)
    assert bh.numbers["benchmark"] == "buy_and_hold" and "buy and hold" in bh.verdict
    json.loads(json.dumps(bh.to_dict()))
    # the frame itself works as close=, and gives the same benchmark
    again = reality_check(opt, "buy_and_hold", close=df, seed=0, reps=500)
    assert again.numbers == bh.numbers
    # the benchmark really is the close's return between the sampled bars
    idx = opt.sample_index
    expected = df["close"].reindex(idx).pct_change().to_numpy()[1:]
    custom = reality_check(opt, expected, seed=0, reps=500)
    assert {k: v for k, v in custom.numbers.items() if k != "benchmark"} == {
        k: v for k, v in bh.numbers.items() if k != "benchmark"
    }
    with pytest.raises(ConfigError) as err:
        reality_check(opt, "buy_and_hold")  # a frame passed directly: the prices must be given
    assert err.value.code == "NEEDS_CLOSE" and "close=" in err.value.hint


def test_optimization_on_a_sample_finds_its_own_prices():
    spec = {"kind": "synthetic", "n": 1500, "seed": 2}
    opt = qlm.optimize("sma_cross", sample=spec, space={"fast": [5, 10], "slow": [30]}, record=False)
    rep = reality_check(opt, "buy_and_hold", seed=0, reps=300)
    close = qlm.sample_data("synthetic", n=1500, seed=2)["close"]
    assert rep.numbers == reality_check(opt, "buy_and_hold", close=close, seed=0, reps=300).numbers


def test_bad_input_is_named():
    m = noise_strategies(0)[:, :5]
    with pytest.raises(ConfigError, match="benchmark"):
        reality_check(m, benchmark="cash")
    with pytest.raises(ConfigError) as err:
        reality_check(m, benchmark=np.zeros(10))
    assert err.value.code == "BAD_BENCHMARK"
    with pytest.raises(ConfigError):
        reality_check(m, reps=10)
    with pytest.raises(ConfigError):
        reality_check(m, alpha=0.0)
    with pytest.raises(ConfigError):
        reality_check(m, block_size=0)
    with pytest.raises(ConfigError) as err:
        reality_check(m[:5])
    assert err.value.code == "TOO_FEW_PERIODS"
    bad = m.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ConfigError) as err:
        reality_check(bad)
    assert err.value.code == "BAD_RETURNS"
    with pytest.raises(ConfigError) as err:
        reality_check(m, "buy_and_hold")
    assert err.value.code == "NEEDS_CLOSE"
