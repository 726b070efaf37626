"""CCXT adapter against a fake Binance spot API served by a local subprocess: requests, errors, retries."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from qlm_kernel import Param, Signals, Strategy
from qlm_kernel.errors import ConfigError, ExecutionError
from qlm_kernel.execution import Order

pytest.importorskip("ccxt")
from qlm_kernel.execution.ccxt_handler import CCXTExecutionHandler, CCXTFeed

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
        "newClientOrderId": "qlm-test-1",
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
    assert [o["clientOrderId"] for o in state["orders"]] == ["lost-1"]
    assert state["balances"]["BTC"] == pytest.approx(0.02)


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
