"""Lookahead check: peeking strategies are caught at the right bar and field, honest ones pass."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from qlm_kernel import Param, Signals, Strategy
from qlm_kernel import indicators as ta
from qlm_kernel.errors import ConfigError, StrategyError
from qlm_kernel.sanity import lookahead


def random_ohlc(n: int = 1500, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, 0.003, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, 0.003, n)))
    volume = rng.integers(1_000, 5_000, n).astype(float)
    index = pd.date_range("2021-01-01", periods=n, freq="h", tz="UTC")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


DATA = random_ohlc()


class PeekNextBar(Strategy):
    """Buys when tomorrow's close is higher: the classic leak."""

    def signals(self, data):
        close = data["close"]
        up = (close.shift(-1) > close).fillna(False).astype(bool)
        return Signals(entry_long=up, exit_long=~up)


class CenteredSma(Strategy):
    """A centered moving average uses half a window of future bars."""

    window = Param(21, min=3, max=101)

    def signals(self, data):
        close = data["close"]
        mid = close.rolling(self.window, center=True).mean()
        return Signals(entry_long=(close > mid).fillna(False), exit_long=(close < mid).fillna(False))


class PeekingStop(Strategy):
    """Honest entries, but the per-bar stop uses the next bar's range."""

    def signals(self, data):
        close = data["close"]
        fast, slow = ta.sma(close, 10), ta.sma(close, 30)
        rng = (data["high"] - data["low"]).shift(-1) / close
        return Signals(
            entry_long=ta.crossed_above(fast, slow), exit_long=ta.crossed_below(fast, slow), sl_stop=rng
        )


class WholeSampleZScore(Strategy):
    """Normalizes with the mean/std of the entire series (known only at the end)."""

    def signals(self, data):
        close = data["close"]
        z = (close - close.mean()) / close.std()
        return Signals(entry_long=z > 0.5, exit_long=z < -0.5)


def test_next_bar_peek_is_caught_at_the_right_bar():
    full = PeekNextBar().signals(DATA).entry_long.to_numpy()
    # a cut keeping c bars flips bar c-1 exactly when the (unseen) close at c was higher
    cut = int(np.flatnonzero(full[1000:])[0]) + 1001
    rep = lookahead(PeekNextBar, DATA, cuts=[cut])
    assert not rep.passed
    first = rep.details["first"]
    assert first["field"] in ("entry_long", "exit_long")
    assert first["bar"] == cut - 1 and first["cut"] == cut
    assert {f["field"] for f in rep.details["findings"]} == {"entry_long", "exit_long"}
    entry = next(f for f in rep.details["findings"] if f["field"] == "entry_long")
    assert entry["full_value"] is True and entry["truncated_value"] is False
    assert rep.numbers["first_bar"] == cut - 1
    assert "Lookahead" in rep.verdict and str(cut - 1) in rep.verdict


def test_next_bar_peek_is_caught_with_default_cuts():
    rep = lookahead(PeekNextBar, DATA)
    assert not rep.passed
    assert rep.numbers["n_cuts"] == 5
    cuts = rep.details["cuts"]
    assert cuts[0] >= len(DATA) // 2 and cuts[-1] == len(DATA) - 1
    assert rep.details["first"]["bar"] == rep.details["first"]["cut"] - 1


@pytest.mark.parametrize("name", ["sma_cross", "rsi_reversion", "donchian_breakout"])
def test_bundled_strategies_pass(name):
    rep = lookahead(name, DATA)
    assert rep.passed, rep.verdict
    assert rep.numbers["n_differences"] == 0
    assert "No lookahead" in rep.verdict


def test_params_are_applied():
    rep = lookahead("sma_cross", DATA, fast=5, slow=20)
    assert rep.passed and rep.details["params"] == {"fast": 5, "slow": 20}


def test_centered_window_is_caught():
    rep = lookahead(CenteredSma, DATA, window=21)
    assert not rep.passed
    first = rep.details["first"]
    assert first["cut"] - 11 < first["bar"] < first["cut"]  # within half a window of the cut


def test_peeking_stop_array_is_caught_and_nan_equals_nan():
    rep = lookahead(PeekingStop, DATA)
    assert not rep.passed
    first = rep.details["first"]
    assert first["field"] == "sl_stop" and first["bar"] == first["cut"] - 1
    assert first["truncated_value"] is None and first["full_value"] > 0  # NaN shown as None
    # exactly one bar per cut differs: the NaN warm-up bars are equal in both runs
    assert rep.numbers["n_differences"] == rep.numbers["n_cuts"]


def test_whole_sample_statistics_are_caught():
    assert not lookahead(WholeSampleZScore, DATA).passed


def test_report_is_json_safe():
    for strat in (PeekNextBar, "sma_cross"):
        rep = lookahead(strat, DATA, n_cuts=2)
        data = json.loads(json.dumps(rep.to_dict()))
        assert data["name"] == "lookahead" and data["passed"] is rep.passed
        assert rep._repr_html_().startswith("<div>")


@pytest.mark.parametrize(
    ("kwargs", "data", "code"),
    [
        ({"cuts": [0]}, DATA, "BAD_CUTS"),
        ({"cuts": [len(DATA)]}, DATA, "BAD_CUTS"),
        ({"cuts": [10.5]}, DATA, "BAD_CUTS"),
        ({"cuts": []}, DATA, "BAD_CUTS"),
        ({"n_cuts": 0}, DATA, "BAD_CUTS"),
        ({}, DATA.iloc[:40], "TOO_FEW_BARS"),
    ],
)
def test_invalid_cuts(kwargs, data, code):
    with pytest.raises(ConfigError) as info:
        lookahead("sma_cross", data, **kwargs)
    assert info.value.code == code and info.value.hint


def test_ready_made_signals_are_refused():
    sig = Signals(entry_long=np.zeros(len(DATA), dtype=bool))
    with pytest.raises(ConfigError) as info:
        lookahead(sig, DATA)
    assert info.value.code == "BAD_STRATEGY" and info.value.hint


def test_failure_on_truncated_data_names_the_cut():
    class NeedsLongHistory(Strategy):
        def signals(self, data):
            if len(data) < len(DATA):
                raise ValueError("too short")
            return Signals()

    with pytest.raises(StrategyError) as info:
        lookahead(NeedsLongHistory, DATA, cuts=[1200])
    assert info.value.context["lookahead_cut"] == 1200
