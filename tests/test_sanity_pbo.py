"""PBO by CSCV: noise is overfit about half the time, a planted edge is not, and the vectorized
implementation matches a literal loop over the block combinations."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from qlm_kernel.errors import ConfigError
from qlm_kernel.sanity import SanityReport, block_bounds, block_stats, pbo, pbo_from_blocks


def noise(seed: int, T: int = 800, N: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.01, (T, N))


def brute_force_pbo(returns: np.ndarray, n_blocks: int, metric: str = "sharpe") -> tuple[float, list[float]]:
    """The paper's algorithm written as plainly as possible (Bailey et al. 2017, section 2)."""
    T, N = returns.shape
    blocks = np.array_split(np.arange(T), n_blocks)
    logits = []
    for is_ids in itertools.combinations(range(n_blocks), n_blocks // 2):
        oos_ids = [b for b in range(n_blocks) if b not in is_ids]
        is_rows = np.concatenate([blocks[b] for b in is_ids])
        oos_rows = np.concatenate([blocks[b] for b in oos_ids])

        def perf(rows):
            part = returns[rows]
            if metric == "mean":
                return part.mean(axis=0)
            return part.mean(axis=0) / part.std(axis=0, ddof=1)

        is_perf, oos_perf = perf(is_rows), perf(oos_rows)
        best = int(np.argmax(is_perf))
        # rank 1 = worst, ties averaged (scipy.stats.rankdata "average")
        below = sum(1 for j in range(N) if oos_perf[j] < oos_perf[best])
        ties = sum(1 for j in range(N) if oos_perf[j] == oos_perf[best]) - 1
        rank = 1 + below + 0.5 * ties
        omega = rank / (N + 1)
        logits.append(math.log(omega / (1 - omega)))
    return sum(1 for lam in logits if lam <= 0) / len(logits), logits


@pytest.mark.parametrize("metric", ["sharpe", "mean"])
def test_vectorized_matches_brute_force(metric):
    returns = np.random.default_rng(3).normal(0.0005, 0.01, (63, 5))  # uneven blocks (63 = 6*10 + 3)
    expected, logits = brute_force_pbo(returns, 6, metric)
    rep = pbo(returns, n_blocks=6, metric=metric)
    assert rep.numbers["n_combinations"] == math.comb(6, 3) == len(logits)
    assert rep.numbers["pbo"] == expected
    assert rep.numbers["logit_mean"] == pytest.approx(np.mean(logits), rel=1e-12, abs=1e-12)
    assert rep.details["logit_min"] == pytest.approx(min(logits))
    assert rep.details["logit_max"] == pytest.approx(max(logits))


def test_brute_force_agrees_on_several_random_cases():
    for seed in range(5):
        returns = np.random.default_rng(100 + seed).standard_t(4, (60, 5)) * 0.01
        assert pbo(returns, n_blocks=6).numbers["pbo"] == brute_force_pbo(returns, 6)[0]


def test_pure_noise_is_overfit_about_half_the_time():
    rep = pbo(noise(1))  # 50 noise trials, 16 blocks, 12,870 splits
    assert isinstance(rep, SanityReport) and rep.name == "pbo"
    assert rep.numbers["n_combinations"] == 12870
    assert rep.numbers["pbo"] > 0.3
    assert "0.5" in rep.verdict
    # a single noise panel is a noisy estimate; the average over seeds is ~0.5
    values = [pbo(noise(seed), n_blocks=10).numbers["pbo"] for seed in range(40)]
    assert abs(np.mean(values) - 0.5) < 0.08


def test_planted_persistent_edge_is_not_overfit():
    returns = noise(2)
    returns[:, 17] += 0.004  # a real edge in every block
    rep = pbo(returns)
    assert rep.numbers["pbo"] < 0.1
    assert rep.passed
    assert rep.details["most_selected"][0]["trial"] == 17
    assert rep.numbers["prob_oos_loss"] < 0.05
    assert "PBO" in rep.verdict and "0.5" in rep.verdict


def test_threshold_parameter_decides_passed():
    returns = noise(1)
    value = pbo(returns).numbers["pbo"]
    assert pbo(returns, threshold=min(0.99, value + 0.01)).passed
    assert not pbo(returns, threshold=max(0.01, value - 0.01)).passed


def test_dataframe_and_returns_matrix_object():
    returns = noise(4, T=400, N=8)
    frame = pd.DataFrame(returns, columns=[f"fast={i}" for i in range(8)])

    class Opt:
        def returns_matrix(self):
            return frame

    a = pbo(returns, n_blocks=8)
    b = pbo(frame, n_blocks=8)
    c = pbo(Opt(), n_blocks=8)
    assert a.numbers == b.numbers == c.numbers
    assert b.details["most_selected"][0]["label"].startswith("fast=")


def test_pbo_from_blocks_equals_pbo():
    returns = noise(5, T=500, N=12)
    sums, sumsq, counts = block_stats(returns, 8)
    assert sums.shape == sumsq.shape == counts.shape == (8, 12)
    bounds = block_bounds(500, 8)
    assert bounds[0] == 0 and bounds[-1] == 500 and np.ptp(np.diff(bounds)) <= 1
    np.testing.assert_allclose(sums[2], returns[bounds[2] : bounds[3]].sum(axis=0))
    direct = pbo(returns, n_blocks=8)
    from_blocks = pbo_from_blocks(sums, sumsq, counts)
    from_1d_counts = pbo_from_blocks(sums, sumsq, counts[:, 0])
    assert direct.numbers == from_blocks.numbers == from_1d_counts.numbers


def test_degradation_and_logit_summary_are_reported():
    rep = pbo(noise(6, T=600, N=20), n_blocks=10)
    for key in ("degradation_slope", "degradation_intercept", "prob_oos_loss", "logit_mean", "logit_median"):
        assert math.isfinite(rep.numbers[key])
    q = rep.details["logit_quantiles"]
    assert q["p05"] <= q["p25"] <= q["p50"] <= q["p75"] <= q["p95"]
    assert sum(rep.details["logit_histogram"]["counts"]) == rep.numbers["n_combinations"]
    # overfitting noise: a better IS winner does not do better OOS (slope near or below 0)
    assert rep.numbers["degradation_slope"] < 0.5


def test_report_is_json_safe_and_renders():
    rep = pbo(noise(7, T=300, N=6), n_blocks=6)
    text = json.dumps(rep.to_dict())
    assert json.loads(text)["name"] == "pbo"
    assert "<table>" in rep._repr_html_()
    assert "pbo" in repr(rep)


def test_never_trading_trials_do_not_break_the_ranking():
    returns = noise(8, T=400, N=6)
    returns[:, 0] = 0.0  # a parameter set that never trades
    rep = pbo(returns, n_blocks=8)
    assert 0.0 <= rep.numbers["pbo"] <= 1.0
    assert all(math.isfinite(v) for v in rep.details["logit_histogram"]["edges"])


@pytest.mark.parametrize(
    ("kwargs", "shape", "code"),
    [
        ({"n_blocks": 7}, (200, 5), "BAD_BLOCKS"),
        ({"n_blocks": 0}, (200, 5), "BAD_BLOCKS"),
        ({"n_blocks": 2.0}, (200, 5), "BAD_BLOCKS"),
        ({"n_blocks": 40}, (2000, 5), "BAD_BLOCKS"),
        ({"n_blocks": 16}, (20, 5), "TOO_FEW_PERIODS"),
        ({"n_blocks": 8}, (200, 1), "TOO_FEW_TRIALS"),
        ({"metric": "sortino"}, (200, 5), "BAD_METRIC"),
        ({"threshold": 1.5}, (200, 5), "BAD_THRESHOLD"),
    ],
)
def test_invalid_input_raises_config_error_with_hint(kwargs, shape, code):
    with pytest.raises(ConfigError) as info:
        pbo(np.zeros(shape) + np.random.default_rng(0).normal(0, 0.01, shape), **kwargs)
    assert info.value.code == code
    assert info.value.hint
    json.dumps(info.value.to_dict())


def test_bad_matrices_are_refused():
    with pytest.raises(ConfigError, match="2-D"):
        pbo(np.zeros(100))
    bad = noise(9, T=100, N=3)
    bad[10, 1] = np.nan
    with pytest.raises(ConfigError, match="NaN") as info:
        pbo(bad, n_blocks=4)
    assert info.value.context["period"] == 10 and info.value.context["trial"] == 1
    with pytest.raises(ConfigError, match="counts"):
        pbo_from_blocks(np.zeros((4, 3)), np.ones((4, 3)), np.ones((3, 4)) * 5)
    with pytest.raises(ConfigError, match="at least"):
        pbo_from_blocks(np.zeros((4, 3)), np.ones((4, 3)), np.ones(4))
