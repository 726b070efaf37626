"""Multi-symbol paper trading: one strategy on a universe through one account (paper broker and CCXT).

The paper replay of a universe equals `qlm.backtest_portfolio(..., fill="next_open")` (fills, trades,
equity); sells go before buys within a bar in the broker's fill order; the CCXT adapter trades two
symbols from one exchange account (the local fake Binance, given a second market here).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel import Param, Signals, Strategy
from qlm_kernel import indicators as ta
from qlm_kernel.execution import PaperExecutionHandler, PaperPortfolioResult, paper_replay_portfolio

COSTS = {"fees": 0.001, "slippage": 0.0005, "size": 0.3, "size_type": "percent"}


class LongShort(Strategy):
    """SMA cross that reverses: long above, short below."""

    fast = Param(5)
    slow = Param(20)

    def signals(self, data):
        f, s = ta.sma(data["close"], self.fast), ta.sma(data["close"], self.slow)
        up, dn = ta.crossed_above(f, s), ta.crossed_below(f, s)
        return Signals(entry_long=up, exit_long=dn, entry_short=dn, exit_short=up)


class Script(Strategy):
    """Volume as a script: 2 = enter long, 3 = exit (independent of prices)."""

    def signals(self, data):
        v = data["volume"].to_numpy()
        return Signals(entry_long=v == 2.0, exit_long=v == 3.0)


@pytest.fixture(scope="module")
def universe():
    frames = {s: qlm.sample_data("synthetic", n=400, seed=k) for k, s in enumerate(("AAA", "BBB", "CCC"))}
    ccc = frames["CCC"]
    frames["CCC"] = ccc.drop(ccc.index[50:60]).drop(ccc.index[[100, 150, 151, 200, 230]])  # gaps
    return qlm.load_universe(frames)


def _fills_equal(paper: PaperPortfolioResult, bt) -> None:
    """Every paper fill is the backtest's order: symbol, bar, side, size, price, fees (1e-9)."""
    p = paper.fills.sort_values(["bar", "symbol", "side"], kind="stable").reset_index(drop=True)
    b = bt.orders.sort_values(["bar", "symbol", "side"], kind="stable").reset_index(drop=True)
    assert len(p) == len(b) > 20
    assert p["symbol"].tolist() == b["symbol"].tolist()
    assert p["bar"].tolist() == b["bar"].tolist()
    assert p["side"].tolist() == b["side"].tolist()
    for a, c in (("size", "size"), ("price", "price"), ("fee", "fees")):
        np.testing.assert_allclose(p[a].to_numpy(), b[c].to_numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("direction", ["long", "both"])
def test_paper_replay_of_a_universe_with_gaps_equals_the_portfolio_backtest(universe, direction):
    assert not universe.has_bar.all()  # CCC misses bars
    bt = qlm.backtest_portfolio(LongShort, universe, fill="next_open", direction=direction, **COSTS)
    res = qlm.paper_replay(LongShort, universe, latency=0.1, direction=direction, **COSTS)
    assert isinstance(res, PaperPortfolioResult)
    _fills_equal(res, bt)
    assert res.final_value == pytest.approx(float(bt.stats["final_value"]), abs=1e-9)
    np.testing.assert_allclose(res.equity.to_numpy(), bt.equity.to_numpy(), rtol=0, atol=1e-9)
    cols = ["symbol", "entry_bar", "exit_bar", "direction", "status", "exit_reason"]
    assert res.trades[cols].astype(str).equals(bt.trades[cols].astype(str))
    for c in ("size", "entry_price", "exit_price", "pnl", "fees"):
        np.testing.assert_allclose(res.trades[c].to_numpy(), bt.trades[c].to_numpy(), rtol=1e-9, atol=1e-9)
    if direction == "both":
        assert (res.trades["direction"] == "short").any()  # buying power with shorts held was exercised
    trading_bars = set(res.fills.loc[res.fills["symbol"] == "CCC", "bar"])
    assert all(universe.has_bar[b, 2] for b in trading_bars)  # a symbol without a bar does not trade
    rep = res.divergence(bt)
    assert rep.summary["identical"] and rep.summary["notes"] == []
    assert rep.summary["n_paper_only"] == rep.summary["n_backtest_only"] == 0
    assert list(rep.per_symbol.index) == ["AAA", "BBB", "CCC"]
    assert (rep.per_symbol["fills_paper"] == rep.per_symbol["orders_backtest"]).all()
    assert rep.per_symbol["pnl_diff"].abs().max() < 1e-9
    assert (rep.trades["matched"] == "both").all()


def test_the_divergence_report_names_latency_and_slippage(universe):
    bt = qlm.backtest_portfolio(LongShort, universe, fill="next_open", **COSTS)
    slow = paper_replay_portfolio(LongShort, universe, latency=5400.0, **COSTS)  # 1.5 bar spacings
    rep = slow.divergence(bt)
    assert "LATENCY" in rep.summary["notes"] and not rep.summary["identical"]
    assert set(rep.summary["notes"]) <= {"LATENCY", "WORKING_AT_END"}  # a late decision still working
    delays = rep.trades.loc[rep.trades["matched"] == "both", "entry_delay"]
    assert len(delays) and (delays >= pd.Timedelta(hours=1)).all()  # each fill at least a bar later
    costly = paper_replay_portfolio(LongShort, universe, latency=0.1, **{**COSTS, "slippage": 0.002})
    rep = costly.divergence(bt)
    assert rep.summary["notes"] == ["SLIPPAGE"] and not rep.summary["identical"]
    assert rep.summary["n_paper_only"] == rep.summary["n_backtest_only"] == 0  # same bars, other prices
    both = rep.orders[rep.orders["matched"] == "both"]
    assert (both["price_diff_bps"] > 0).all()  # every fill worse for the trader


def _script_universe() -> dict[str, pd.DataFrame]:
    idx = pd.date_range("2024-01-01", periods=8, freq="h", tz="UTC", name="time")
    base = 100.0 + np.arange(8.0)
    frames = {}
    for sym, codes in (("AAA", {3: 2.0}), ("BBB", {1: 2.0, 3: 3.0})):
        vol = np.ones(8)
        for k, v in codes.items():
            vol[k] = v
        frames[sym] = pd.DataFrame(
            {"open": base, "high": base + 1, "low": base - 1, "close": base + 0.5, "volume": vol}, index=idx
        )
    return frames


def test_sells_fill_before_buys_within_a_bar_in_the_broker(tmp_path):
    # bar 3: AAA enters, BBB exits; both fill at bar 4's open. AAA comes first in symbol order, but the
    # sale goes first, so the all-cash entry gets the sale's proceeds (a buy first would be refused).
    frames = _script_universe()
    handler = PaperExecutionHandler(cash=10_000.0, latency=0.1, slippage=0.0005, fees=0.001)
    order_of_fills = []
    handler.on_fill(lambda f, o: order_of_fills.append((f.bar, f.symbol, f.side)))
    from qlm_kernel.store import Store

    with Store(tmp_path / "qlm.db") as store:
        res = paper_replay_portfolio(Script, frames, handler=handler, record=True, store=store, publish=False)
        stored = store.paper_fills(res.meta["session_id"])
        marks = store.paper_marks(res.meta["session_id"])
    assert order_of_fills == [(2, "BBB", "buy"), (4, "BBB", "sell"), (4, "AAA", "buy")]
    assert [(f["bar"], f["symbol"], f["side"]) for f in stored] == order_of_fills  # journaled per bar
    assert len(marks) == 8
    sale, buy = res.fills.iloc[1], res.fills.iloc[2]
    cash_after_sale = (
        10_000.0
        - res.fills.iloc[0]["size"] * res.fills.iloc[0]["price"] * 1.001
        + sale["size"] * sale["price"] * 0.999
    )
    assert buy["size"] * buy["price"] * 1.001 == pytest.approx(cash_after_sale, rel=1e-12)
    assert not res.refusals
    bt = qlm.backtest_portfolio(Script, frames, fill="next_open", fees=0.001, slippage=0.0005)
    _fills_equal_small(res, bt)
    assert res.final_value == pytest.approx(float(bt.stats["final_value"]), abs=1e-9)


def _fills_equal_small(paper, bt) -> None:
    p = paper.fills.sort_values(["bar", "symbol"], kind="stable").reset_index(drop=True)
    b = bt.orders.sort_values(["bar", "symbol"], kind="stable").reset_index(drop=True)
    assert list(zip(p["bar"], p["symbol"], p["side"], strict=True)) == list(
        zip(b["bar"], b["symbol"], b["side"], strict=True)
    )
    np.testing.assert_allclose(p["size"], b["size"], rtol=1e-9)
    np.testing.assert_allclose(p["price"], b["price"], rtol=1e-12)


def test_events_risk_limits_and_the_session_api(universe):
    import queue

    from qlm_kernel.events import subscribe

    seen: queue.Queue = queue.Queue(maxsize=100_000)
    sub = subscribe("paper.*", seen)
    try:
        res = paper_replay_portfolio(
            LongShort, universe, latency=0.1, publish=True, risk={"max_position": 30.0}, **COSTS
        )
    finally:
        sub.unsubscribe()
    events = []
    while not seen.empty():
        events.append(seen.get_nowait())
    topics = {e.topic for e in events}
    assert {
        "paper.session.started",
        "paper.session.stopped",
        "paper.order",
        "paper.fill",
        "paper.pnl",
        "paper.position",
        "paper.order.rejected",
    } <= topics
    fills = [e.payload for e in events if e.topic == "paper.fill"]
    assert len(fills) == len(res.fills) and {f["symbol"] for f in fills} == {"AAA", "BBB", "CCC"}
    assert sum(e.topic == "paper.pnl" for e in events) == len(universe)
    assert res.refusals and {r["code"] for r in res.refusals} == {"RISK_MAX_POSITION"}
    assert len(res.trades) > 0 and (res.trades["size"] <= 30.0).all()
    assert {r["symbol"] for r in res.refusals} <= {"AAA", "BBB", "CCC"}
    from qlm_kernel import session

    out = session.paper_replay_portfolio(LongShort, universe=universe, settings={**COSTS, "latency": 0.1})
    json.dumps(out)
    assert out["divergence"]["summary"]["identical"] is True
    assert out["backtest_final_value"] == pytest.approx(out["result"]["final_value"], abs=1e-9)


# -- CCXT: two markets of one account on the local fake exchange -------------------------------------------

KEY, SECRET = "test-api-key-7f3a", "test-secret-9c1e"
SERVER = Path(__file__).with_name("fake_exchange.py")
ETH_PRICE = 1_000.0

# tests/fake_exchange.py serves one market (BTCUSDT); this runs it with a second one (ETHUSDT, fixed price
# 1000) on the same account, patching only its market list, balances, order views and fills.
TWO_MARKETS = textwrap.dedent(f"""
    import copy, sys, time
    sys.path.insert(0, {str(SERVER.parent)!r})
    import fake_exchange as fe

    PRICES = {{"BTCUSDT": fe.PRICE, "ETHUSDT": {ETH_PRICE!r}}}
    BASES = {{"BTCUSDT": "BTC", "ETHUSDT": "ETH"}}
    info = fe._exchange_info

    def exchange_info():
        out = info()
        eth = copy.deepcopy(out["symbols"][0])
        eth.update(symbol="ETHUSDT", baseAsset="ETH")
        out["symbols"].append(eth)
        return out

    view = fe._order_view

    def order_view(o, anonymous=False):
        out = view(o, anonymous)
        sym = o.get("symbol", "BTCUSDT")
        price = PRICES[sym]
        out["symbol"] = sym
        out["cummulativeQuoteQty"] = f"{{o['executed'] * price:.8f}}"
        for f in out["fills"]:
            f["price"] = f"{{price:.2f}}"
            f["commission"] = f"{{o['executed'] * price * 0.001:.8f}}"
        return out

    def new_order(self, params):
        st = self.state
        sym = params["symbol"]
        qty = float(params["quantity"])
        if abs(round(qty / fe.STEP) * fe.STEP - qty) > 1e-12 or qty <= 0 or qty > 50:
            return 400, {{"code": -1013, "msg": "Filter failure: LOT_SIZE"}}
        with st.lock:
            cid = params["newClientOrderId"]
            if cid in st.orders:
                return 400, {{"code": -2010, "msg": "Duplicate order sent."}}
            cost = qty * PRICES[sym]
            if params["side"] == "BUY" and cost * 1.001 > st.balances["USDT"]:
                return 400, {{"code": -2010, "msg": "Account has insufficient balance for requested action."}}
            if params["side"] == "SELL" and qty > st.balances[BASES[sym]] + 1e-12:
                return 400, {{"code": -2010, "msg": "Account has insufficient balance for requested action."}}
            o = {{"orderId": st.next_id, "clientOrderId": cid, "side": params["side"], "qty": qty,
                 "executed": 0.0, "status": "NEW", "time": int(time.time() * 1000), "symbol": sym}}
            st.next_id += 1
            st.orders[cid] = o
            self._fill(o)
            return 200, fe._order_view(o)

    def fill(self, o):
        st = self.state
        sym = o.get("symbol", "BTCUSDT")
        cost = o["qty"] * PRICES[sym]
        sign = 1.0 if o["side"] == "BUY" else -1.0
        st.balances["USDT"] -= sign * cost + cost * 0.001
        st.balances[BASES[sym]] += sign * o["qty"]
        o["executed"] = o["qty"]
        o["status"] = "FILLED"

    fe._exchange_info = exchange_info
    fe._order_view = order_view
    fe.Handler._new_order = new_order
    fe.Handler._fill = fill
    fe.Handler.state = fe.State(sys.argv[2], sys.argv[3])
    fe.Handler.state.balances["ETH"] = 0.0
    server = fe.ThreadingHTTPServer(("127.0.0.1", 0), fe.Handler)
    print(f"PORT {{server.server_address[1]}}", flush=True)
    server.serve_forever()
""")


@pytest.fixture
def two_market_exchange(monkeypatch, tmp_path):
    pytest.importorskip("ccxt")
    script = tmp_path / "two_markets.py"
    script.write_text(TWO_MARKETS)
    proc = subprocess.Popen(
        [sys.executable, str(script), "x", SECRET, KEY], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(proc.stdout.readline().split()[1])
        base = f"http://127.0.0.1:{port}"

        def control(path: str):
            with urllib.request.urlopen(base + path, timeout=5) as resp:
                return json.loads(resp.read())

        monkeypatch.setenv("QLM_BINANCE_API_KEY", KEY)
        monkeypatch.setenv("QLM_BINANCE_SECRET", SECRET)
        yield base, control
    finally:
        proc.kill()
        proc.wait()


def test_ccxt_adapter_trades_two_symbols_from_one_account(two_market_exchange):
    from qlm_kernel.execution.ccxt_handler import CCXTExecutionHandler

    base, control = two_market_exchange
    h = CCXTExecutionHandler("binance", api_urls=base, backoff=0.01, config={"enableRateLimit": False})
    idx = pd.date_range("2024-01-01", periods=8, freq="h", tz="UTC", name="time")
    frames = {}
    # ETH: enter at bar 1, exit at bar 4; BTC: enter at bar 4, exit at bar 6. At bar 4 BTC comes first in
    # symbol order, but ETH's sale is sent first and the BTC entry is sized from the cash it freed.
    for sym, price, codes in (
        ("BTC-USDT", 20_000.0, {4: 2.0, 6: 3.0}),
        ("ETH-USDT", ETH_PRICE, {1: 2.0, 4: 3.0}),
    ):
        vol = np.ones(8)
        for k, v in codes.items():
            vol[k] = v
        px = np.full(8, price)
        frames[sym] = pd.DataFrame({"open": px, "high": px, "low": px, "close": px, "volume": vol}, index=idx)
    markets = {"BTC-USDT": "BTC/USDT", "ETH-USDT": "ETH/USDT"}  # universe symbols -> exchange symbols
    res = paper_replay_portfolio(Script, frames, handler=h, markets=markets, size=0.4, size_type="percent")
    posts = [
        (r["params"]["symbol"], r["params"]["side"], float(r["params"]["quantity"]))
        for r in control("/__requests")
        if r["method"] == "POST" and r["path"] == "/api/v3/order"
    ]
    assert [(s, side) for s, side, _q in posts] == [
        ("ETHUSDT", "BUY"),
        ("ETHUSDT", "SELL"),
        ("BTCUSDT", "BUY"),
        ("BTCUSDT", "SELL"),
    ]
    eth_qty = posts[0][2]
    assert eth_qty == pytest.approx(0.4 * 10_000 / ETH_PRICE * 0.998, abs=1e-5)
    usdt_after_sale = 10_000 - eth_qty * ETH_PRICE * 1.001 + eth_qty * ETH_PRICE * 0.999
    assert posts[2][2] == pytest.approx(0.4 * usdt_after_sale / 20_000 * 0.998, abs=1e-5)  # one account
    state = control("/__state")
    assert state["balances"]["BTC"] == pytest.approx(0.0) and state["balances"]["ETH"] == pytest.approx(0.0)
    assert [(f.bar, f.symbol, f.side) for f in res._fills] == [
        (1, "ETH/USDT", "buy"),
        (4, "ETH/USDT", "sell"),
        (4, "BTC/USDT", "buy"),
        (6, "BTC/USDT", "sell"),
    ]
    t = res.trades
    assert t["symbol"].tolist() == ["ETH/USDT", "BTC/USDT"] and (t["status"] == "closed").all()
    assert res.final_value == pytest.approx(state["balances"]["USDT"], rel=1e-9)
    bt = qlm.backtest_portfolio(Script, frames, fill="next_open", size=0.4, size_type="percent")
    rep = res.divergence(bt)
    assert rep.summary["notes"] == ["OTHER_HANDLER"]  # an exchange fills at its own prices and times
    assert (
        rep.per_symbol.loc["ETH/USDT", "fills_paper"]
        == rep.per_symbol.loc["ETH/USDT", "orders_backtest"]
        == 2
    )


# -- the runner's shared plumbing (submit with refusal, one journal/bus unit per step) ----------------------


def test_portfolio_runner_journals_each_step_once_and_records_refusals_with_their_symbol():
    from qlm_kernel.engine.settings import BacktestSettings
    from qlm_kernel.execution import Bar, PortfolioRunner, RiskLimits
    from qlm_kernel.execution.signals import BarSignals

    nan = float("nan")

    class EnterAtFirstBar:
        def at(self, i, history):
            return BarSignals(i == 0, False, False, False, nan, nan, nan)

    class Journal:
        def __init__(self):
            self.rows = []

        def bar_done(self, bar, time, orders, fills, state, summary):
            self.rows.append((bar, time, [o.client_order_id for o in orders], len(fills), state, summary))

    events = []
    journal = Journal()
    handler = PaperExecutionHandler(cash=1_000.0, latency=0.0, slippage=0.0)
    runner = PortfolioRunner(
        handler,
        {"AAA": EnterAtFirstBar(), "BBB": EnterAtFirstBar()},
        BacktestSettings(init_cash=1_000.0, size=5.0, size_type="units"),
        session_id="s",
        risk=RiskLimits(max_position=4.0),  # both 5-unit entries are refused
        journal=journal,
        publish=lambda topic, payload: events.append((topic, payload)),
    )
    times = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    for t in times:
        runner.step(t, {"AAA": Bar(t, *[10.0] * 4, 100.0), "BBB": Bar(t, *[20.0] * 4, 100.0)})
    # step 0's entries are submitted by estimated value: AAA (5 x 10) before BBB (5 x 20)
    assert [r["symbol"] for r in runner.refusals] == ["AAA", "BBB"]
    assert {r["code"] for r in runner.refusals} == {"RISK_MAX_POSITION"}
    assert all(
        list(r) == ["bar", "symbol", "client_order_id", "code", "message", "error"] and r["bar"] == 0
        for r in runner.refusals
    )
    rejected = [p for topic, p in events if topic == "paper.order.rejected"]
    assert rejected == [{"session_id": "s", **r} for r in runner.refusals]
    # one journal unit per step; the rejected orders are in step 0's unit; its summary is the pnl event's
    assert [row[0] for row in journal.rows] == [0, 1, 2]
    assert journal.rows[0][2] == ["s-AAA-0-e", "s-BBB-0-e"]
    pnl = [p for topic, p in events if topic == "paper.pnl"]
    assert [{"session_id": "s", **row[5]} for row in journal.rows] == pnl
    assert journal.rows[-1][5]["n_refused"] == 2 and journal.rows[-1][5]["n_orders"] == 2
    assert runner.summary()["n_fills"] == 0 and runner.equity == [1_000.0] * 3


def test_portfolio_result_tables_and_summary_without_fills():
    from qlm_kernel.execution.types import Order

    index = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    refused = Order("AAA", "buy", size=1.0, client_order_id="s-AAA-0-e", status="rejected")
    res = PaperPortfolioResult(
        index=index,
        symbols=("AAA", "BBB"),
        last_close={"AAA": 10.0, "BBB": 20.0},
        fills=[],
        orders=[refused],
        equity=np.array([]),
        refusals=[{"bar": 0, "symbol": "AAA", "client_order_id": "s-AAA-0-e", "code": "X"}],
        settings={"init_cash": 500.0},
        params={},
        strategy_name="S",
        has_bar=np.ones((3, 2), dtype=bool),
    )
    assert res.fills.empty and str(res.fills["bar_time"].dt.tz) == "UTC"
    assert res.orders["status"].tolist() == ["rejected"]
    assert res.final_value == 500.0
    out = res.to_dict()
    assert list(out)[:3] == ["strategy", "symbols", "params"] and out["symbols"] == ["AAA", "BBB"]
    assert out["n_fills"] == 0 and out["n_orders"] == 1 and out["refusals"][0]["symbol"] == "AAA"
    json.dumps(out)
