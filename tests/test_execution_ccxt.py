"""CCXT adapter against a fake Binance spot API served by a local subprocess: requests, errors, retries."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from qlm_kernel import Param, Signals, Strategy
from qlm_kernel.errors import ConfigError, ExecutionError, SecurityError
from qlm_kernel.execution import Order

pytest.importorskip("ccxt")
from qlm_kernel.execution.ccxt_handler import CCXTExecutionHandler, CCXTFeed, exchange_client_id

KEY, SECRET = "test-api-key-7f3a", "test-secret-9c1e"
SERVER = Path(__file__).with_name("fake_exchange.py")


@pytest.fixture
def exchange(monkeypatch):
    """A fresh fake exchange process; yields (base url, control function)."""
    proc = subprocess.Popen([sys.executable, str(SERVER), SECRET, KEY], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline().split()[1])
        base = f"http://127.0.0.1:{port}"

        def control(path: str, body: dict | None = None):
            data = None if body is None else json.dumps(body).encode()
            with urllib.request.urlopen(urllib.request.Request(base + path, data=data), timeout=5) as resp:
                return json.loads(resp.read())

        monkeypatch.setenv("QLM_BINANCE_API_KEY", KEY)
        monkeypatch.setenv("QLM_BINANCE_SECRET", SECRET)
        yield base, control
    finally:
        proc.kill()
        proc.wait()


def _handler(base: str, **kw) -> CCXTExecutionHandler:
    return CCXTExecutionHandler(
        "binance", api_urls=base, backoff=0.01, config={"enableRateLimit": False}, **kw
    )


def test_market_order_request_shape_balance_and_position(exchange):
    base, control = exchange
    h = _handler(base)
    fills = []
    h.on_fill(lambda f, o: fills.append(f))
    order = h.submit(Order("BTC/USDT", "buy", size=0.1, client_order_id="qlm-test-1"))
    assert order.status == "filled" and order.filled == pytest.approx(0.1) and order.avg_price == 20_000.0
    assert len(fills) == 1 and fills[0].size == pytest.approx(0.1) and fills[0].fee == pytest.approx(2.0)
    assert h.submit(Order("BTC/USDT", "buy", size=0.1, client_order_id="qlm-test-1")) is order  # idempotent
    posts = [r for r in control("/__requests") if r["method"] == "POST"]
    assert len(posts) == 1
    p = posts[0]
    assert p["path"] == "/api/v3/order" and p["api_key_header"] == KEY
    assert p["content_type"] == "application/x-www-form-urlencoded"
    assert {k: p["params"][k] for k in ("symbol", "side", "type", "quantity", "newClientOrderId")} == {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": "0.1",
        "newClientOrderId": h.exchange_client_id("qlm-test-1"),  # ccxt's unified clientOrderId, mapped
    }
    assert "signature" in p["params"] and "timestamp" in p["params"]  # the server verified the HMAC
    assert h.position("BTC/USDT") == pytest.approx(0.1)
    assert h.balance()["cash"] == pytest.approx(10_000 - 2_002.0)
    h.submit(Order("BTC/USDT", "sell", close=True, client_order_id="qlm-test-2"))
    assert h.position("BTC/USDT") == 0.0


def test_exchange_errors_map_to_execution_errors(exchange):
    base, _ = exchange
    h = _handler(base)
    with pytest.raises(ExecutionError) as info:
        h.submit(Order("BTC/USDT", "buy", size=1.0, client_order_id="big"))  # 20k > 10k USDT
    assert info.value.code == "EXCHANGE_INSUFFICIENT_FUNDS" and info.value.hint
    with pytest.raises(ExecutionError) as info:
        h.submit(Order("BTC/USDT", "sell", size=60.0, client_order_id="lot"))  # over maxQty (LOT_SIZE)
    assert info.value.code == "EXCHANGE_INVALID_ORDER"
    with pytest.raises(ExecutionError) as info:
        h.submit(Order("ETH/USDT", "buy", size=1.0, client_order_id="sym"))
    assert info.value.code == "EXCHANGE_BAD_SYMBOL"
    with pytest.raises(ExecutionError) as info:
        h.submit(Order("BTC/USDT", "buy", size=0.01, sl_stop=0.02, client_order_id="stops"))
    assert info.value.code == "UNSUPPORTED"


def test_network_errors_and_rate_limits_are_retried_with_backoff(exchange):
    base, control = exchange
    delays = []
    h = _handler(base, sleep=delays.append, max_retries=3)
    h.markets()
    control(
        "/__control",
        {
            "faults": [
                {"method": "POST", "path": "/api/v3/order", "kind": "status", "status": 503, "times": 1},
                {"method": "POST", "path": "/api/v3/order", "kind": "status", "status": 429, "times": 1},
            ]
        },
    )
    order = h.submit(Order("BTC/USDT", "buy", size=0.01, client_order_id="retry-1"))
    assert order.status == "filled" and len(delays) == 2 and delays[1] > delays[0] * 0.9  # growing backoff
    control(
        "/__control", {"faults": [{"method": "GET", "path": "/api/v3/account", "kind": "drop", "times": 1}]}
    )
    assert h.balance()["BTC"] == pytest.approx(0.01)  # a dropped connection is retried too
    control(
        "/__control",
        {
            "faults": [
                {"method": "GET", "path": "/api/v3/account", "kind": "status", "status": 429, "times": 10}
            ]
        },
    )
    with pytest.raises(ExecutionError) as info:
        h.balance()
    assert info.value.code == "EXCHANGE_RATE_LIMIT" and info.value.context["attempts"] == 4


def test_a_create_whose_response_is_lost_is_not_placed_twice(exchange):
    base, control = exchange
    h = _handler(base)
    h.markets()
    control(
        "/__control",
        {"faults": [{"method": "POST", "path": "/api/v3/order", "kind": "drop_after", "times": 1}]},
    )
    order = h.submit(Order("BTC/USDT", "buy", size=0.02, client_order_id="lost-1"))
    assert order.status == "filled" and order.filled == pytest.approx(0.02)
    state = control("/__state")
    assert [o["clientOrderId"] for o in state["orders"]] == [h.exchange_client_id("lost-1")]
    assert state["balances"]["BTC"] == pytest.approx(0.02)


def test_client_order_ids_are_deterministic_short_uuids_sent_as_the_unified_param(exchange):
    cid = exchange_client_id("0123456789ab-17-e")
    assert re.fullmatch(r"[0-9a-f]{32}", cid)  # a UUID: Binance, OKX, Kraken, Bybit, KuCoin, Coinbase take it
    assert exchange_client_id("0123456789ab-17-e") == cid != exchange_client_id("0123456789ab-17-x")
    assert exchange_client_id("a" * 64, "gate") == exchange_client_id("a" * 64)[:28]  # Gate's limit
    base, control = exchange
    h = _handler(base)
    order = h.submit(Order("BTC/USDT", "buy", size=0.01, client_order_id="sess-with-a-long-name-0001-e"))
    (post,) = [r for r in control("/__requests") if r["method"] == "POST"]
    assert (
        post["params"]["newClientOrderId"]
        == cid_of(order)
        == _handler(base).exchange_client_id(order.client_order_id)
    )  # the same id after a restart, so a resumed session cannot place the order twice
    assert "origClientOrderId" not in post["params"]


def cid_of(order: Order) -> str:
    return exchange_client_id(order.client_order_id, "binance")


# The lookup after a failed create uses what the exchange offers (exchange.has); these variants make
# the same real Binance-speaking ccxt client behave like exchanges with fewer methods.
HAS_VARIANTS = {
    "fetchOrder+fetchOrders": {},
    "lists only (fetchOrders)": {"fetchOrder": False},
    "open+closed lists only": {"fetchOrder": False, "fetchOrders": False},
    "fetchOrder by client id only": {"fetchOrders": False, "fetchClosedOrders": False},
}


def _posts(control) -> list[dict]:
    return [r for r in control("/__requests") if r["method"] == "POST" and r["path"] == "/api/v3/order"]


@pytest.mark.parametrize("has", list(HAS_VARIANTS.values()), ids=list(HAS_VARIANTS))
def test_a_create_that_times_out_after_placing_is_found_by_client_id_not_sent_again(exchange, has):
    base, control = exchange
    h = _handler(base, max_retries=2)
    h.exchange.timeout = 400  # ms: the fake answers the create after 1.5 s, so ccxt raises RequestTimeout
    h.exchange.has.update(has)
    h.markets()
    control(
        "/__control",
        {
            "faults": [
                {"method": "POST", "path": "/api/v3/order", "kind": "delay_after", "seconds": 1.5, "times": 1}
            ]
        },
    )
    order = h.submit(Order("BTC/USDT", "buy", size=0.02, client_order_id="slow-1"))
    assert order.status == "filled" and order.filled == pytest.approx(0.02)
    assert len(_posts(control)) == 1  # looked up, never re-sent
    state = control("/__state")
    assert [o["clientOrderId"] for o in state["orders"]] == [cid_of(order)]
    assert state["balances"]["BTC"] == pytest.approx(0.02)


@pytest.mark.parametrize("has", list(HAS_VARIANTS.values()), ids=list(HAS_VARIANTS))
def test_a_create_lost_before_the_exchange_is_re_sent_once_the_exchange_shows_no_such_order(exchange, has):
    base, control = exchange
    h = _handler(base)
    h.exchange.has.update(has)
    h.markets()
    control(
        "/__control", {"faults": [{"method": "POST", "path": "/api/v3/order", "kind": "drop", "times": 1}]}
    )
    control("/__control", {"clear_requests": True})
    order = h.submit(Order("BTC/USDT", "buy", size=0.03, client_order_id="dropped-1"))
    assert order.status == "filled"
    trail = [(r["method"], r["path"]) for r in control("/__requests")]
    first, second = [i for i, r in enumerate(trail) if r == ("POST", "/api/v3/order")]
    assert second > first + 1  # the second send came only after a lookup in between
    assert all(m == "GET" for m, _ in trail[first + 1 : second])
    assert [o["clientOrderId"] for o in control("/__state")["orders"]] == [cid_of(order)]


def _assert_state_unknown(h, control, client_order_id: str, placed: int = 1) -> None:
    with pytest.raises(ExecutionError) as info:
        h.submit(Order("BTC/USDT", "buy", size=0.02, client_order_id=client_order_id))
    err = info.value
    assert err.code == "ORDER_STATE_UNKNOWN" and "check the exchange" in err.hint
    assert err.context["exchange_client_order_id"] == h.exchange_client_id(client_order_id)
    assert err.context["exchange_client_order_id"] in err.hint
    assert len(_posts(control)) == 1  # never a blind second send
    assert len(control("/__state")["orders"]) == placed


def test_when_the_lookup_fails_the_order_state_is_unknown_and_nothing_is_re_sent(exchange):
    base, control = exchange
    h = _handler(base, max_retries=1)
    h.markets()
    lookups_down = [
        {"method": "GET", "path": path, "kind": "status", "status": 503, "times": 100}
        for path in ("/api/v3/order", "/api/v3/allOrders", "/api/v3/openOrders")
    ]
    control(
        "/__control",
        {
            "faults": [
                {"method": "POST", "path": "/api/v3/order", "kind": "drop_after", "times": 1},
                *lookups_down,
            ]
        },
    )
    _assert_state_unknown(h, control, "unknown-1")


def test_an_exchange_that_cannot_look_orders_up_gets_no_second_send(exchange):
    base, control = exchange
    h = _handler(base)
    h.exchange.has.update({"fetchOrder": False, "fetchOrders": False, "fetchOpenOrders": False})
    h.markets()
    control(
        "/__control", {"faults": [{"method": "POST", "path": "/api/v3/order", "kind": "drop", "times": 1}]}
    )
    _assert_state_unknown(h, control, "blind-1", placed=0)  # though this request never reached it


def test_an_order_without_a_client_id_that_may_be_ours_makes_the_state_unknown(exchange):
    base, control = exchange
    h = _handler(base)
    h.exchange.has.update({"fetchOrder": False})  # lists only, and they do not report client ids
    h.markets()
    control(
        "/__control",
        {
            "anonymous": True,
            "faults": [{"method": "POST", "path": "/api/v3/order", "kind": "drop_after", "times": 1}],
        },
    )
    _assert_state_unknown(h, control, "anon-1")


def test_verbose_and_plain_http_urls_are_refused(monkeypatch):
    monkeypatch.setenv("QLM_BINANCE_API_KEY", KEY)
    monkeypatch.setenv("QLM_BINANCE_SECRET", SECRET)
    with pytest.raises(SecurityError) as info:
        CCXTExecutionHandler("binance", config={"verbose": True})
    assert info.value.code == "VERBOSE_REFUSED" and info.value.hint
    for urls in ("http://gateway.example.com", {"private": "http://10.1.2.3/api/v3"}, "ftp://127.0.0.1/"):
        with pytest.raises(SecurityError) as info:
            CCXTExecutionHandler("binance", api_urls=urls)
        assert info.value.code == "INSECURE_URL" and "https" in info.value.hint
    with pytest.raises(SecurityError) as info:
        CCXTExecutionHandler("binance", config={"urls": {"api": {"public": "http://api.example.com/api/v3"}}})
    assert (
        info.value.code == "INSECURE_URL"
        and info.value.context["setting"] == "config['urls']['api']['public']"
    )
    h = CCXTExecutionHandler("binance", api_urls="https://gateway.example.com")
    assert h.exchange.urls["api"]["private"] == "https://gateway.example.com/api/v3"
    for local in ("http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"):
        assert (
            CCXTExecutionHandler("binance", api_urls=local).exchange.urls["api"]["public"].startswith(local)
        )


def test_open_orders_cancel_and_fills_found_by_polling(exchange):
    base, control = exchange
    h = _handler(base)
    control("/__control", {"hold": True})
    a = h.submit(Order("BTC/USDT", "buy", size=0.01, client_order_id="held-a"))
    b = h.submit(Order("BTC/USDT", "buy", size=0.02, client_order_id="held-b"))
    assert a.status == b.status == "open"
    assert {o.client_order_id for o in h.open_orders("BTC/USDT")} == {"held-a", "held-b"}
    assert h.cancel("held-a").status == "cancelled"
    control("/__control", {"release": True})
    fills = h.on_bar("BTC/USDT", 0.0, 1, 1, 1, 20_000.0)
    assert [f.client_order_id for f in fills] == ["held-b"] and b.status == "filled"
    assert h.cancel("held-b").status == "filled"  # finished orders come back unchanged
    assert h.open_orders("BTC/USDT") == []


def test_keys_come_from_the_environment_and_are_never_logged(exchange, caplog):
    base, control = exchange
    caplog.set_level(logging.DEBUG)
    h = _handler(base)
    control(
        "/__control",
        {
            "faults": [
                {"method": "GET", "path": "/api/v3/account", "kind": "status", "status": 503, "times": 1}
            ]
        },
    )
    h.balance()
    with pytest.raises(ExecutionError) as info:
        h.submit(Order("BTC/USDT", "buy", size=5.0, client_order_id="k"))
    text = caplog.text + repr(h) + str(info.value) + json.dumps(info.value.to_dict())
    assert KEY not in text and SECRET not in text
    with pytest.raises(ConfigError) as cfg:
        CCXTExecutionHandler("binance", config={"apiKey": KEY})
    assert cfg.value.code == "SECRET_IN_CONFIG"


def test_sandbox_is_the_default_and_live_needs_asking(monkeypatch):
    monkeypatch.delenv("QLM_BINANCE_API_KEY", raising=False)
    assert "testnet" in CCXTExecutionHandler("binance").exchange.urls["api"]["public"]
    assert "api.binance.com" in CCXTExecutionHandler("binance", sandbox=False).exchange.urls["api"]["public"]


def test_import_qlm_kernel_does_not_import_ccxt():
    code = (
        "import sys, qlm_kernel, qlm_kernel.execution; qlm_kernel.paper_replay; print('ccxt' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class BuyThenSell(Strategy):
    """Enter on bar ``a``, exit on bar ``b`` (by position in the data)."""

    a = Param(3)
    b = Param(8)

    def signals(self, data):
        import numpy as np

        n = len(data)
        el, xl = np.zeros(n, bool), np.zeros(n, bool)
        if n > self.a:
            el[self.a] = True
        if n > self.b:
            xl[self.b] = True
        return Signals(entry_long=el, exit_long=xl)


def test_paper_trade_through_the_ccxt_handler_and_feed(exchange, tmp_path):
    from qlm_kernel.execution.trading import paper_trade
    from qlm_kernel.store import Store

    base, control = exchange
    h = _handler(base)
    feed = CCXTFeed(h, "BTC/USDT", "1h", poll_interval=0.01, max_bars=12)
    with Store(tmp_path / "qlm.db") as store:
        res = paper_trade(BuyThenSell, feed, h, symbol="BTC/USDT", store=store, size=0.05, publish=False)
        orders = store.paper_orders(res.meta["session_id"])
    assert [o["client_order_id"].rsplit("-", 2)[1:] for o in orders] == [["3", "e"], ["8", "x"]]
    assert all(o["status"] == "filled" for o in orders)
    t = res.trades
    assert len(t) == 1 and t["status"].iloc[0] == "closed" and t["size"].iloc[0] == pytest.approx(0.05)
    assert control("/__state")["balances"]["BTC"] == pytest.approx(0.0)
