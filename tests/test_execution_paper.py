"""PaperExecutionHandler and risk limits: idempotent ids, latency on the simulated clock, refusals."""

from __future__ import annotations

import pytest

import qlm_kernel as qlm
from qlm_kernel.errors import ConfigError, ExecutionError
from qlm_kernel.execution import Order, PaperExecutionHandler, RiskLimits, paper_replay


def _bar(h, t, price, volume=1e9, bar=-1):
    return h.on_bar("X", float(t), price, price * 1.01, price * 0.99, price, volume, bar=bar)


def test_submit_is_idempotent_on_the_client_order_id():
    h = PaperExecutionHandler(cash=1000.0, latency=0.0, slippage=0.0)
    _bar(h, 0, 10.0)
    a = h.submit(Order("X", "buy", size=5, client_order_id="same"))
    b = h.submit(Order("X", "buy", size=7, client_order_id="same"))
    assert a is b and len(h.open_orders()) == 1
    fills = _bar(h, 60, 10.0)
    assert len(fills) == 1 and h.position("X") == 5 and h.cash == 950.0
    h.restore(h.state(), known_ids={"same"})
    with pytest.raises(ExecutionError) as info:
        h.submit(Order("X", "buy", size=1, client_order_id="same"))
    assert info.value.code == "DUPLICATE_ORDER"


def test_latency_on_the_simulated_clock_and_slippage_against_the_trader():
    h = PaperExecutionHandler(cash=10_000.0, latency=90.0, slippage=0.001, fees=0.01)
    _bar(h, 0, 100.0)
    h.submit(Order("X", "buy", size=10, client_order_id="b"))  # stamped t=0, arrives t=90
    assert _bar(h, 60, 101.0) == []  # the bar at t=60 is before the arrival
    (fill,) = _bar(h, 120, 102.0)
    assert fill.time == 120.0 and fill.ref_price == 102.0 and fill.price == pytest.approx(102.0 * 1.001)
    assert fill.fee == pytest.approx(10 * 102.0 * 1.001 * 0.01)
    h.submit(Order("X", "sell", close=True, client_order_id="s"))
    (fill,) = _bar(h, 240, 110.0)
    assert fill.price == pytest.approx(110.0 * 0.999) and h.position("X") == 0.0


def test_refusals_are_execution_errors_with_codes():
    h = PaperExecutionHandler(cash=1000.0, latency=0.0, slippage=0.0, max_order_size=50, max_order_value=2000)
    _bar(h, 0, 30.0)
    with pytest.raises(ExecutionError) as info:
        h.submit(Order("X", "buy", size=45, client_order_id="big"))  # 1350 > 1000 cash
    assert info.value.code == "INSUFFICIENT_CASH" and info.value.hint
    with pytest.raises(ExecutionError) as info:
        h.submit(Order("X", "buy", size=60, client_order_id="limit"))
    assert info.value.code == "SIZE_LIMIT"
    with pytest.raises(ExecutionError) as info:
        Order("X", "hold", size=1)
    assert info.value.code == "INVALID_ORDER"
    order = h.submit(
        Order("X", "buy", cash_fraction=1.0, client_order_id="all")
    )  # 100 units > 50: at the fill
    _bar(h, 60, 10.0)
    assert order.status == "rejected" and order.error["code"] == "SIZE_LIMIT"
    with pytest.raises(ConfigError):
        PaperExecutionHandler(slippage=2.0)


def test_cancel_before_arrival_and_protective_stop():
    h = PaperExecutionHandler(cash=1000.0, latency=100.0, slippage=0.0)
    _bar(h, 0, 10.0)
    h.submit(Order("X", "buy", size=1, client_order_id="c"))
    assert h.cancel("c").status == "cancelled" and _bar(h, 200, 10.0) == []
    h.submit(Order("X", "buy", size=10, sl_stop=0.05, client_order_id="e"))
    (_entry,) = h.on_bar("X", 400.0, 10.0, 10.2, 9.9, 10.1, 1e9)
    (stop,) = h.on_bar("X", 500.0, 10.0, 10.1, 9.0, 9.2, 1e9)  # low 9.0 touches 9.5
    assert stop.reason == "stop_loss" and stop.price == pytest.approx(9.5) and h.position("X") == 0


def test_risk_limits_refuse_with_clear_codes():
    df = qlm.sample_data("synthetic", n=1500, seed=4)
    res = paper_replay(
        "sma_cross", df, latency=0.0, slippage=0.0, fast=5, slow=20, risk={"max_position": 1.0}
    )
    assert res.refusals and {r["code"] for r in res.refusals} == {"RISK_MAX_POSITION"}
    assert len(res.trades) == 0 and "max_position" in res.refusals[0]["error"]["hint"]
    res = paper_replay(
        "sma_cross", df, latency=0.0, slippage=0.0, fast=2, slow=5, size=1, risk={"max_orders_per_minute": 1}
    )
    # hourly bars: one order a minute allows one order per bar, so a reversal's second order is refused
    assert all(r["code"] == "RISK_ORDER_RATE" for r in res.refusals)
    limits = RiskLimits(max_daily_loss=100.0)
    limits.observe(0.0, 10_000.0)
    with pytest.raises(ExecutionError) as info:
        limits.check(
            Order("X", "buy", size=1), now=60.0, position=0.0, equity=9_850.0, cash=9_850.0, price=10.0
        )
    assert info.value.code == "RISK_DAILY_LOSS"
    limits.check(Order("X", "sell", close=True), now=60.0, position=5.0, equity=9_850.0, cash=0.0, price=10.0)
    limits.check(
        Order("X", "buy", size=1), now=86_400.0 * 1.5, position=0.0, equity=9_850.0, cash=9_850.0, price=10.0
    )  # a new UTC day
    with pytest.raises(ConfigError):
        RiskLimits.from_dict({"max_loss": 1})
