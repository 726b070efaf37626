"""Probabilistic / Deflated Sharpe Ratio: the paper's worked example, an independent re-computation,
and the properties the statistic must have."""

from __future__ import annotations

import itertools
import json
import math
from statistics import NormalDist

import numpy as np
import pytest

from qlm_kernel.errors import ConfigError
from qlm_kernel.sanity import deflated_sharpe, expected_max_sharpe, probabilistic_sharpe

PHI = NormalDist()
GAMMA = 0.5772156649015329


def test_paper_worked_example():
    """Bailey & López de Prado (2014), section 5: annualized SR 2.5 on 5 years of daily returns
    (T = 1250, 250 days a year), N = 100 trials with V[SR] = 0.5 (annualized), skew -3, kurtosis 10:
    SR0 = 0.1132 per day and DSR = 0.9004."""
    sr = 2.5 / math.sqrt(250)
    rep = deflated_sharpe(sr, 100, 1250, skew=-3.0, kurtosis=10.0, sharpe_variance=0.5 / 250)
    assert rep.numbers["sharpe0"] == pytest.approx(0.1132, abs=5e-5)
    assert rep.numbers["dsr"] == pytest.approx(0.9004, abs=5e-5)
    assert not rep.passed  # 0.90 is not above 0.95
    assert deflated_sharpe(sr, 100, 1250, -3.0, 10.0, sharpe_variance=0.5 / 250, confidence=0.9).passed


def test_hand_computed_case():
    """SR = 0.05 per bar, T = 2000, N = 10 trials, V[SR] = 0.0004, normal returns — by hand."""
    sr0 = math.sqrt(0.0004) * (
        (1 - GAMMA) * PHI.inv_cdf(1 - 1 / 10) + GAMMA * PHI.inv_cdf(1 - 1 / (10 * math.e))
    )
    z = (0.05 - sr0) * math.sqrt(1999) / math.sqrt(1 + (3 - 1) / 4 * 0.05**2)
    rep = deflated_sharpe(0.05, 10, 2000, sharpe_variance=0.0004)
    assert rep.numbers["sharpe0"] == pytest.approx(sr0, rel=1e-12)
    assert rep.numbers["dsr"] == pytest.approx(PHI.cdf(z), rel=1e-12)
    # by hand: 0.02 * (0.4228 * 1.2816 + 0.5772 * 1.7892) = 0.03149; z = 0.01851 * 44.71 / 1.0006 = 0.827
    assert sr0 == pytest.approx(0.03149, abs=1e-5)
    assert rep.numbers["dsr"] == pytest.approx(0.7959, abs=1e-4)


def test_against_scipy_if_available():
    stats = pytest.importorskip("scipy.stats")
    sr, bench, T, skew, kurt = 0.08, 0.02, 700, -0.7, 5.5
    z = (sr - bench) * math.sqrt(T - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    assert probabilistic_sharpe(sr, bench, T, skew, kurt) == pytest.approx(stats.norm.cdf(z), rel=1e-10)
    n, v = 250, 0.0009
    expected = math.sqrt(v) * (
        (1 - np.euler_gamma) * stats.norm.ppf(1 - 1 / n) + np.euler_gamma * stats.norm.ppf(1 - 1 / (n * np.e))
    )
    assert expected_max_sharpe(n, v) == pytest.approx(expected, rel=1e-10)


def test_dsr_decreases_with_more_trials():
    values = [
        deflated_sharpe(0.06, n, 1500, sharpe_variance=0.001).numbers["dsr"] for n in (1, 2, 10, 100, 1000)
    ]
    assert all(a > b for a, b in itertools.pairwise(values))


def test_single_trial_is_psr_against_zero():
    rep = deflated_sharpe(0.04, 1, 1000, skew=-0.5, kurtosis=4.0, sharpe_variance=0.01)
    assert rep.numbers["sharpe0"] == 0.0
    assert rep.numbers["dsr"] == pytest.approx(probabilistic_sharpe(0.04, 0.0, 1000, -0.5, 4.0))
    assert rep.numbers["dsr"] == pytest.approx(rep.numbers["psr0"])


def test_psr_properties():
    assert probabilistic_sharpe(0.1, 0.1, 500, 0.0, 3.0) == pytest.approx(0.5)
    assert probabilistic_sharpe(0.1, 0.0, 2000, 0.0, 3.0) > probabilistic_sharpe(0.1, 0.0, 200, 0.0, 3.0)
    # negative skew and fat tails make a positive Sharpe less trustworthy
    assert probabilistic_sharpe(0.1, 0.0, 500, -2.0, 9.0) < probabilistic_sharpe(0.1, 0.0, 500, 0.0, 3.0)


def test_variance_from_trials_sharpes():
    rng = np.random.default_rng(0)
    trials = rng.normal(0.0, 0.03, 200)
    rep = deflated_sharpe(0.09, None, 1000, trials_sharpes=trials)
    assert rep.numbers["n_trials"] == 200
    assert rep.numbers["sharpe_variance"] == pytest.approx(np.var(trials, ddof=1))
    assert rep.details["sharpe_variance_source"] == "trials_sharpes"
    null = deflated_sharpe(0.09, 200, 1000)
    assert null.numbers["sharpe_variance"] == pytest.approx(1 / 999)
    assert null.details["sharpe_variance_source"].startswith("null")


def test_return_matrix_input():
    rng = np.random.default_rng(1)
    noise = rng.normal(0.0, 0.01, (1500, 40))
    rep = deflated_sharpe(noise)  # best of 40 noise columns: luck, not skill
    assert not rep.passed and rep.numbers["n_trials"] == 40 and rep.numbers["n_obs"] == 1500
    edge = noise.copy()
    edge[:, 5] += 0.003

    class Opt:
        def returns_matrix(self):
            return edge

    good = deflated_sharpe(Opt())
    assert good.passed and good.details["selected_trial"] == 5
    assert good.numbers["sharpe"] == pytest.approx(edge[:, 5].mean() / edge[:, 5].std(ddof=1))


def test_report_json_and_verdict():
    rep = deflated_sharpe(0.2, 5, 3000, sharpe_variance=0.001)
    assert rep.passed and "DSR" in rep.verdict and "0.95" in rep.verdict
    data = json.loads(json.dumps(rep.to_dict()))
    assert data["numbers"]["n_trials"] == 5 and data["passed"] is True
    assert "per-period" in data["details"]["units"]
    assert "deflated_sharpe" in rep._repr_html_()


@pytest.mark.parametrize(
    ("args", "kwargs", "code"),
    [
        ((0.1, 0, 100), {}, "BAD_TRIALS"),
        ((0.1, 2.5, 100), {}, "BAD_TRIALS"),
        ((0.1, 10, 1), {}, "BAD_OBS"),
        ((0.1, None, 100), {}, "MISSING_ARGUMENT"),
        ((0.1, 10, 100), {"sharpe_variance": -1.0}, "BAD_VARIANCE"),
        ((0.1, 10, 100), {"confidence": 1.0}, "BAD_THRESHOLD"),
        ((0.5, 10, 100), {"skew": 5.0, "kurtosis": 3.0}, "BAD_MOMENTS"),
    ],
)
def test_invalid_input(args, kwargs, code):
    with pytest.raises(ConfigError) as info:
        deflated_sharpe(*args, **kwargs)
    assert info.value.code == code and info.value.hint
