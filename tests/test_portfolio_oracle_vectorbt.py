"""The portfolio engine against vectorbt's grouped, cash-sharing ``Portfolio.from_signals``.

Same inputs, ``cash_sharing=True, group_by=True, call_seq="auto"``: final value within 1e-9
relative and the same orders (time, symbol, side, size, price, fees). QLM's cash account sets a
short's collateral aside, which is vectorbt's ``lock_cash=True``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from tests.vectorbt_lazy import vbt

REL = 1e-9


@pytest.fixture(scope="module")
def universe():
    frames = {f"S{j}": qlm.sample_data("synthetic", n=2500, seed=40 + j) for j in range(5)}
    return qlm.load_universe(frames, name="five")


def wide_flags(u, seed: int, p: float = 0.03) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n, m = u.close.shape
    return {
        field: pd.DataFrame(rng.random((n, m)) < p, index=u.index, columns=list(u.symbols))
        for field in ("entry_long", "exit_long", "entry_short", "exit_short")
    }


def run_vbt(u, sig: dict[str, pd.DataFrame], short: bool, **kw):
    vkw = dict(kw)
    if vkw.get("size_type") == "units":
        vkw["size_type"] = "amount"
    if vkw.get("size") is None:
        vkw.pop("size", None)
        vkw.pop("size_type", None)
    extra = {"short_entries": sig["entry_short"], "short_exits": sig["exit_short"]} if short else {}
    close = pd.DataFrame(u.close, index=u.index, columns=list(u.symbols))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return vbt.Portfolio.from_signals(
            close, sig["entry_long"], sig["exit_long"], **extra, init_cash=10_000.0, freq="1h",
            cash_sharing=True, group_by=True, call_seq="auto", lock_cash=True, **vkw,
        )


def run_qlm(u, sig: dict[str, pd.DataFrame], short: bool, **kw):
    fields = sig if short else {k: sig[k] for k in ("entry_long", "exit_long")}
    return qlm.backtest_portfolio(
        qlm.Signals(**fields), u, init_cash=10_000.0, direction="both" if short else "long", **kw
    )


def assert_same(pf, res) -> None:
    assert res.stats["final_value"] == pytest.approx(pf.final_value(), rel=REL)
    theirs = pf.orders.records_readable
    theirs = pd.DataFrame({
        "time": theirs["Timestamp"].to_numpy(),
        "symbol": theirs["Column"].astype(str).to_numpy(),
        "side": theirs["Side"].str.lower().to_numpy(),
        "size": theirs["Size"].to_numpy(),
        "price": theirs["Price"].to_numpy(),
        "fees": theirs["Fees"].to_numpy(),
    }).sort_values(["time", "symbol", "side"], kind="stable").reset_index(drop=True)
    ours = res.orders[["time", "symbol", "side", "size", "price", "fees"]].astype({"symbol": str})
    ours = ours.sort_values(["time", "symbol", "side"], kind="stable").reset_index(drop=True)
    assert len(ours) == len(theirs) > 20
    assert (ours["time"].to_numpy() == theirs["time"].to_numpy()).all()
    assert (ours["symbol"].to_numpy() == theirs["symbol"].to_numpy()).all()
    assert (ours["side"].to_numpy() == theirs["side"].to_numpy()).all()
    for col in ("size", "price"):
        np.testing.assert_allclose(ours[col], theirs[col], rtol=REL)
    np.testing.assert_allclose(ours["fees"], theirs["fees"], rtol=REL, atol=1e-9)
    np.testing.assert_allclose(res.equity.to_numpy(), pf.value().to_numpy(), rtol=REL)


COSTS = [{}, {"fees": 0.001}, {"fees": 0.002, "slippage": 0.0005}]


@pytest.mark.parametrize("costs", COSTS, ids=["free", "fees", "fees+slippage"])
@pytest.mark.parametrize("size", [0.2, 0.5], ids=["20pct", "50pct"])
def test_percent_sizing_long_only(universe, costs, size):
    sig = wide_flags(universe, 1)
    kw = {"size": size, "size_type": "percent", **costs}
    assert_same(run_vbt(universe, sig, False, **kw), run_qlm(universe, sig, False, **kw))


@pytest.mark.parametrize("costs", COSTS, ids=["free", "fees", "fees+slippage"])
def test_value_sizing_long_short(universe, costs):
    """Shorts lock their collateral; reversals are two orders in QLM and one in vectorbt, so compare
    with flips apart (vectorbt reverses in one order: sizes then differ only in how they are split)."""
    sig = wide_flags(universe, 2)
    kw = {"size": 3_000.0, "size_type": "value", **costs}
    pf = run_vbt(universe, sig, True, **kw)
    res = run_qlm(universe, sig, True, **kw)
    assert res.stats["final_value"] == pytest.approx(pf.final_value(), rel=REL)
    np.testing.assert_allclose(res.equity.to_numpy(), pf.value().to_numpy(), rtol=REL)
    assert (res.trades["direction"] == "short").sum() > 10


@pytest.mark.parametrize("short", [False, True], ids=["long", "long_short"])
def test_all_in_sizing(universe, short):
    """size=None: the first order of a bar (sells first, then symbol order) takes all buying power."""
    sig = wide_flags(universe, 3)
    kw = {"fees": 0.001, "slippage": 0.0002}
    pf = run_vbt(universe, sig, short, **kw)
    res = run_qlm(universe, sig, short, **kw)
    assert res.stats["final_value"] == pytest.approx(pf.final_value(), rel=REL)
    np.testing.assert_allclose(res.equity.to_numpy(), pf.value().to_numpy(), rtol=REL)


def test_units_sizing_sorted_by_order_value(universe):
    """With units sizing, the cheaper order of a bar goes first (call_seq='auto' sorts by value)."""
    sig = wide_flags(universe, 4, p=0.05)
    kw = {"size": 40.0, "size_type": "units", "fees": 0.001}
    assert_same(run_vbt(universe, sig, False, **kw), run_qlm(universe, sig, False, **kw))


@pytest.fixture(scope="module")
def wide_universe():
    """21 symbols: the kernel reads a bar's signals eight symbols to a word, so three words, the last
    one padded."""
    frames = {f"W{j:02d}": qlm.sample_data("synthetic", n=1500, seed=90 + j) for j in range(21)}
    return qlm.load_universe(frames, name="twenty-one")


@pytest.mark.parametrize("short", [False, True], ids=["long", "long_short"])
def test_many_symbols_across_signal_words(wide_universe, short):
    sig = wide_flags(wide_universe, 6, p=0.02)
    kw = {"size": 500.0, "size_type": "value", "fees": 0.001, "slippage": 0.0002}
    pf = run_vbt(wide_universe, sig, short, **kw)
    res = run_qlm(wide_universe, sig, short, **kw)
    if short:
        assert res.stats["final_value"] == pytest.approx(pf.final_value(), rel=REL)
        np.testing.assert_allclose(res.equity.to_numpy(), pf.value().to_numpy(), rtol=REL)
    else:
        assert_same(pf, res)
    assert set(res.trades["symbol"]) == set(wide_universe.symbols)  # every word's symbols trade
    keys = res.trades["entry_time"].astype("int64").to_numpy() * 100 + np.searchsorted(
        wide_universe.symbols, res.trades["symbol"].to_numpy())
    assert (np.diff(keys) > 0).all()  # trades in order of entry, then symbol
