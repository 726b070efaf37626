"""A small fake Binance spot API on 127.0.0.1, run as a subprocess by the CCXT adapter tests.

Serves the endpoints the adapter uses (exchangeInfo, klines, order POST/GET/DELETE, openOrders,
allOrders, account), checks every signed request's HMAC-SHA256 signature and API-key header, and
records requests. Test control, outside ccxt: ``POST /__control`` with JSON ``{"faults": [{"method":
"POST", "path": "/api/v3/order", "kind": "status"|"drop"|"drop_after"|"delay_after", "status": 503,
"seconds": 1.0, "times": 2}], "hold": true|false, "release": true, "anonymous": true|false}``
(``drop`` loses the request before it is handled, a fault's optional ``"skip": n`` lets the first n
matching requests through first, ``drop_after`` / ``delay_after`` place the order and
then lose / delay the response; ``anonymous`` hides client order ids from order views, as exchanges
that do not report them); ``"klines": {"start": ms, "count": n, "gaps": [[i, j], ...],
"duplicates": [i, ...]}`` sets the candle history (hourly bars ``start + k * 1h`` for k < n, without the
bars i <= k < j of each gap, bar k of ``duplicates`` served twice; klines honour startTime, endTime and
limit); ``GET /__requests``; ``GET /__state``.

Usage: ``python tests/fake_exchange.py SECRET APIKEY`` prints ``PORT <n>`` and serves until killed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

PRICE = 20_000.0
STEP = 0.00001
BAR_MS = 3_600_000
T0 = 1_700_000_000_000 // BAR_MS * BAR_MS


class State:
    def __init__(self, secret: str, api_key: str) -> None:
        self.secret = secret
        self.api_key = api_key
        self.lock = threading.Lock()
        self.balances = {"USDT": 10_000.0, "BTC": 0.0}
        self.orders: dict[str, dict] = {}
        self.next_id = 1
        self.requests: list[dict] = []
        self.faults: list[dict] = []
        self.hold = False
        self.anonymous = False
        self.n_bars = 30
        self.history: dict | None = None  # {"start", "count", "gaps", "duplicates"} from /__control


def _exchange_info() -> dict:
    return {
        "timezone": "UTC",
        "serverTime": T0,
        "rateLimits": [],
        "exchangeFilters": [],
        "symbols": [
            {
                "symbol": "BTCUSDT",
                "status": "TRADING",
                "baseAsset": "BTC",
                "baseAssetPrecision": 8,
                "quoteAsset": "USDT",
                "quotePrecision": 8,
                "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "MARKET"],
                "icebergAllowed": True,
                "ocoAllowed": True,
                "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "permissions": ["SPOT"],
                "permissionSets": [["SPOT"]],
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "minPrice": "0.01",
                        "maxPrice": "1000000.00",
                        "tickSize": "0.01",
                    },
                    {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "50.0", "stepSize": "0.00001"},
                    {"filterType": "NOTIONAL", "minNotional": "5.0", "maxNotional": "9000000.0"},
                ],
            }
        ],
    }


def _klines(start: int | None, limit: int, n: int) -> list[list]:
    out = []
    for i in range(n):
        t = T0 + i * BAR_MS
        if start is not None and t < start:
            continue
        o = PRICE + 10 * i
        out.append(
            [
                t,
                f"{o:.2f}",
                f"{o + 30:.2f}",
                f"{o - 30:.2f}",
                f"{o + 10:.2f}",
                "12.5",
                t + BAR_MS - 1,
                "250000",
                100,
                "6",
                "120000",
                "0",
            ]
        )
    return out[:limit]


def _candle(t: int, i: int) -> list:
    o = PRICE + 10 * i
    return [t, f"{o:.2f}", f"{o + 30:.2f}", f"{o - 30:.2f}", f"{o + 10:.2f}", "12.5", t + BAR_MS - 1,
            "250000", 100, "6", "120000", "0"]


def _history_klines(h: dict, start: int | None, end: int | None, limit: int) -> list[list]:
    """Candles of a configured history between startTime and endTime (inclusive), at most ``limit``."""
    t0, count = int(h["start"]), int(h["count"])
    missing = {k for i, j in h.get("gaps", []) for k in range(int(i), int(j))}
    twice = {int(k) for k in h.get("duplicates", [])}
    first = 0 if start is None else max(0, -(-(start - t0) // BAR_MS))
    out: list[list] = []
    for k in range(first, count):
        t = t0 + k * BAR_MS
        if end is not None and t > end:
            break
        if k in missing:
            continue
        out.append(_candle(t, k))
        if k in twice:
            out.append(_candle(t, k))
        if len(out) >= limit:
            break
    return out[:limit]


def _order_view(o: dict, anonymous: bool = False) -> dict:
    t = o.get("time", T0)
    return {
        "symbol": "BTCUSDT",
        "orderId": o["orderId"],
        "orderListId": -1,
        "clientOrderId": "" if anonymous else o["clientOrderId"],
        "price": "0.00000000",
        "origQty": f"{o['qty']:.8f}",
        "executedQty": f"{o['executed']:.8f}",
        "cummulativeQuoteQty": f"{o['executed'] * PRICE:.8f}",
        "status": o["status"],
        "timeInForce": "GTC",
        "type": "MARKET",
        "side": o["side"],
        "stopPrice": "0.00000000",
        "time": t,
        "updateTime": t,
        "isWorking": True,
        "workingTime": t,
        "origQuoteOrderQty": "0.00000000",
        "transactTime": t,
        "fills": [
            {
                "price": f"{PRICE:.2f}",
                "qty": f"{o['executed']:.8f}",
                "commission": f"{o['executed'] * PRICE * 0.001:.8f}",
                "commissionAsset": "USDT",
                "tradeId": o["orderId"],
            }
        ]
        if o["executed"]
        else [],
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-binance/1"
    state: State

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: int, msg: str) -> None:
        self._send(status, {"code": code, "msg": msg})

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(2)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        st = self.state
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if url.path.startswith("/__"):
            return self._control(method, url.path, body)
        raw = url.query if method in ("GET", "DELETE") else body
        params = dict(parse_qsl(raw, keep_blank_values=True))
        record = {
            "method": method,
            "path": url.path,
            "params": params,
            "api_key_header": self.headers.get("X-MBX-APIKEY"),
            "content_type": self.headers.get("Content-Type"),
        }
        fault = None
        with st.lock:
            st.requests.append(record)
            for f in st.faults:
                if f["method"] == method and f["path"] == url.path and f["times"] > 0:
                    if f.get("skip", 0) > 0:
                        f["skip"] -= 1
                        continue
                    f["times"] -= 1
                    fault = f
                    break
        if fault is not None and fault["kind"] == "status":
            if fault["status"] == 429:
                return self._error(
                    429, -1003, "Too many requests; current limit is 1200 request weight per 1 MINUTE."
                )
            return self._text(fault["status"], "Service Unavailable")
        if fault is not None and fault["kind"] == "drop":
            return self._drop()
        signed = url.path in ("/api/v3/order", "/api/v3/openOrders", "/api/v3/allOrders", "/api/v3/account")
        if signed:
            if "signature" not in params or "timestamp" not in params:
                return self._error(400, -1102, "Mandatory parameter 'signature' was not sent.")
            unsigned = raw.rsplit("&signature=", 1)[0]
            good = hmac.new(st.secret.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
            if params["signature"] != good or self.headers.get("X-MBX-APIKEY") != st.api_key:
                return self._error(401, -2014, "API-key format invalid.")
        route = (method, url.path)
        if route == ("GET", "/api/v3/exchangeInfo"):
            return self._send(200, _exchange_info())
        if route == ("GET", "/api/v3/klines"):
            start = int(params["startTime"]) if "startTime" in params else None
            if st.history is not None:
                end = int(params["endTime"]) if "endTime" in params else None
                return self._send(200, _history_klines(st.history, start, end, int(params.get("limit", 500))))
            return self._send(200, _klines(start, int(params.get("limit", 500)), st.n_bars))
        if route == ("GET", "/api/v3/account"):
            return self._send(
                200,
                {
                    "makerCommission": 10,
                    "takerCommission": 10,
                    "canTrade": True,
                    "accountType": "SPOT",
                    "permissions": ["SPOT"],
                    "updateTime": T0,
                    "balances": [
                        {"asset": a, "free": f"{v:.8f}", "locked": "0.00000000"}
                        for a, v in st.balances.items()
                    ],
                },
            )
        if route == ("POST", "/api/v3/order"):
            response = self._new_order(params)
            if response is None:
                return None
            if fault is not None and fault["kind"] == "drop_after":
                return self._drop()
            if fault is not None and fault["kind"] == "delay_after":
                time.sleep(float(fault.get("seconds", 1.0)))
            return self._send(*response)
        if route in (("GET", "/api/v3/order"), ("DELETE", "/api/v3/order")):
            with st.lock:
                o = self._find(params)
                if o is None:
                    return self._error(
                        400,
                        -2013 if method == "GET" else -2011,
                        "Order does not exist." if method == "GET" else "Unknown order sent.",
                    )
                if method == "DELETE":
                    if o["status"] != "NEW":
                        return self._error(400, -2011, "Unknown order sent.")
                    o["status"] = "CANCELED"
                return self._send(200, _order_view(o, st.anonymous))
        if route == ("GET", "/api/v3/openOrders"):
            with st.lock:
                return self._send(
                    200, [_order_view(o, st.anonymous) for o in st.orders.values() if o["status"] == "NEW"]
                )
        if route == ("GET", "/api/v3/allOrders"):
            with st.lock:
                rows = [_order_view(o, st.anonymous) for o in st.orders.values()]
                return self._send(200, rows[-int(params.get("limit", 500)) :])
        return self._error(404, -1000, f"no route {method} {url.path}")

    def _find(self, params: dict) -> dict | None:
        cid = params.get("origClientOrderId")
        if cid:
            return self.state.orders.get(cid)
        oid = params.get("orderId")
        return next((o for o in self.state.orders.values() if str(o["orderId"]) == oid), None)

    def _new_order(self, params: dict) -> tuple[int, dict] | None:
        st = self.state
        for name in ("symbol", "side", "type", "quantity", "newClientOrderId"):
            if name not in params:
                self._error(400, -1102, f"Mandatory parameter '{name}' was not sent.")
                return None
        qty = float(params["quantity"])
        if abs(round(qty / STEP) * STEP - qty) > 1e-12 or qty <= 0 or qty > 50:
            return 400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}
        with st.lock:
            cid = params["newClientOrderId"]
            if cid in st.orders:
                return 400, {"code": -2010, "msg": "Duplicate order sent."}
            cost = qty * PRICE
            if params["side"] == "BUY" and cost * 1.001 > st.balances["USDT"]:
                return 400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}
            if params["side"] == "SELL" and qty > st.balances["BTC"] + 1e-12:
                return 400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}
            o = {
                "orderId": st.next_id,
                "clientOrderId": cid,
                "side": params["side"],
                "qty": qty,
                "executed": 0.0,
                "status": "NEW",
                "time": int(time.time() * 1000),
            }
            st.next_id += 1
            st.orders[cid] = o
            if not st.hold:
                self._fill(o)
            return 200, _order_view(o)

    def _fill(self, o: dict) -> None:
        st = self.state
        cost = o["qty"] * PRICE
        if o["side"] == "BUY":
            st.balances["USDT"] -= cost * 1.001
            st.balances["BTC"] += o["qty"]
        else:
            st.balances["USDT"] += cost * 0.999
            st.balances["BTC"] -= o["qty"]
        o["executed"] = o["qty"]
        o["status"] = "FILLED"

    def _control(self, method: str, path: str, body: str) -> None:
        st = self.state
        with st.lock:
            if path == "/__requests":
                return self._send(200, st.requests)
            if path == "/__state":
                return self._send(200, {"balances": st.balances, "orders": list(st.orders.values())})
            if path == "/__control" and method == "POST":
                cmd = json.loads(body or "{}")
                st.faults.extend(cmd.get("faults", []))
                if "hold" in cmd:
                    st.hold = bool(cmd["hold"])
                if "klines" in cmd:
                    st.history = cmd["klines"]
                if "anonymous" in cmd:
                    st.anonymous = bool(cmd["anonymous"])
                if cmd.get("release"):
                    for o in st.orders.values():
                        if o["status"] == "NEW":
                            self._fill(o)
                if cmd.get("clear_requests"):
                    st.requests.clear()
                return self._send(200, {"ok": True})
        return self._send(404, {"error": path})


def main() -> None:
    secret, api_key = sys.argv[1], sys.argv[2]
    Handler.state = State(secret, api_key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
