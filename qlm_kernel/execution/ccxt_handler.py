"""`CCXTExecutionHandler`: the `ExecutionHandler` over ccxt's unified API (spot, market orders).

ccxt is an optional extra (``pip install qlm-kernel[ccxt]``) imported only here, when a handler is made.

- **Keys** come from environment variables only: ``QLM_<EXCHANGE>_API_KEY`` / ``QLM_<EXCHANGE>_SECRET``
  (e.g. ``QLM_BINANCE_API_KEY``), else ``QLM_CCXT_API_KEY`` / ``QLM_CCXT_SECRET``. They are never
  logged, never in ``repr`` and scrubbed from every error message. Keys in ``config`` are refused.
- **Sandbox/testnet** is on by default (``sandbox=True``: ccxt's ``set_sandbox_mode``); live trading
  needs ``sandbox=False`` explicitly. ``api_urls`` points the exchange's API at another base URL
  (a local fake exchange in tests, a self-hosted gateway). Signed requests travel over https only:
  an ``api_urls`` or ``config["urls"]`` URL that is not https is refused (``SecurityError``
  INSECURE_URL; plain http is allowed to loopback addresses only, where nothing leaves the machine),
  and so is ccxt's ``verbose`` option (``SecurityError`` VERBOSE_REFUSED: it prints signed requests,
  API key included, bypassing logging and its redaction).
- **Errors**: insufficient funds -> ``ExecutionError(EXCHANGE_INSUFFICIENT_FUNDS)``, invalid orders
  -> EXCHANGE_INVALID_ORDER, unknown orders -> EXCHANGE_NOT_FOUND, bad keys -> EXCHANGE_AUTH,
  other exchange errors -> EXCHANGE_ERROR. Network errors, timeouts, rate limits and exchange
  downtime are retried with jittered exponential backoff (``max_retries``); then EXCHANGE_UNAVAILABLE
  or EXCHANGE_RATE_LIMIT.
- **Idempotency**: every order carries ccxt's unified ``clientOrderId`` param on every exchange:
  `exchange_client_id` of the order's client id, 32 hex digits (a UUID; 28 on Gate), the same for the
  same order after a restart. A create that fails on the network (timeout, dropped connection, 5xx,
  rate limit) is never re-sent blind: the order is first looked up by that id with what the
  exchange offers (``has``: fetchOrder by client id, then fetchOrders or fetchOpenOrders +
  fetchClosedOrders) and re-sent only when the exchange affirmatively shows no such order; when
  that cannot be told, ``ExecutionError`` ORDER_STATE_UNKNOWN asks the user to check the exchange.
- **Fills** are read from the create response and by polling working orders on each bar (`on_bar`).
- Spot only: the "position" in a symbol is the total balance of its base currency; protective
  exits (``sl_stop``...) are simulated by the paper handler only and refused here.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from qlm_kernel.errors import ConfigError, ExecutionError, SecurityError
from qlm_kernel.execution.base import ExecutionHandler, unknown_order
from qlm_kernel.execution.feeds import Bar
from qlm_kernel.execution.types import Fill, Order, Position

log = logging.getLogger("qlm_kernel.execution.ccxt")
_SIGNATURE = re.compile(r"(signature|apiKey|api_key|secret)=[^&\s\"']+", re.IGNORECASE)


def _ccxt() -> Any:
    try:
        import ccxt
    except ImportError as exc:  # pragma: no cover - ccxt is installed with the dev extra
        raise ConfigError(
            "the CCXT adapter needs the ccxt package",
            hint="pip install 'qlm-kernel[ccxt]'",
            code="MISSING_DEPENDENCY",
        ) from exc
    return ccxt


def exchange_keys(exchange_id: str) -> tuple[str | None, str | None]:
    """(key, secret) from ``QLM_<EXCHANGE>_API_KEY``/``_SECRET``, else ``QLM_CCXT_API_KEY``/``_SECRET``."""
    prefix = f"QLM_{exchange_id.upper()}_"
    key = os.environ.get(prefix + "API_KEY") or os.environ.get("QLM_CCXT_API_KEY")
    secret = os.environ.get(prefix + "SECRET") or os.environ.get("QLM_CCXT_SECRET")
    return key or None, secret or None


_CLIENT_ID_NAMESPACE = uuid.UUID("6f1e2c9a-3b7d-5e4f-8a21-0c9d4b7e5a13")
# the longest client order id an exchange takes where that is under 32 characters
_CLIENT_ID_LENGTH = {"gate": 28, "gateio": 28}


def exchange_client_id(client_order_id: str, exchange_id: str = "") -> str:
    """The ``clientOrderId`` sent for an order: a UUID (32 hex) of its client id, cut to the exchange cap."""
    return uuid.uuid5(_CLIENT_ID_NAMESPACE, client_order_id).hex[: _CLIENT_ID_LENGTH.get(exchange_id, 32)]


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse_insecure_urls(value: Any, setting: str) -> None:
    """Refuse a URL override that is not https (http to loopback only): signed requests carry the key."""
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_insecure_urls(item, f"{setting}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _refuse_insecure_urls(item, setting)
        return
    if not isinstance(value, str) or "://" not in value:
        return
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme in ("https", "wss"):
        return
    if scheme in ("http", "ws") and _is_loopback(parts.hostname):
        return
    raise SecurityError(
        f"refusing the exchange URL {value!r} in {setting}: API requests must use https",
        hint="use an https:// URL (plain http is allowed to 127.0.0.1/localhost only)",
        code="INSECURE_URL",
        setting=setting,
        url=value,
    )


class _Redact(logging.Filter):
    """Scrubs API keys, secrets and signatures from log records of ccxt and its HTTP stack."""

    def __init__(self) -> None:
        super().__init__("qlm-redact")
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = _SIGNATURE.sub(lambda m: m.group(1) + "=***", text)
        for s in self.secrets:
            clean = clean.replace(s, "***")
        if clean != text:
            record.msg, record.args = clean, ()
        return True


_REDACT = _Redact()
_LOGGERS = ("ccxt.base.exchange", "urllib3.connectionpool", "urllib3.util.retry", "requests")


def _redact_logs(secrets: list[str]) -> None:
    """Make sure ccxt's own DEBUG request logging (headers include the key) never shows the keys."""
    _REDACT.secrets.update(secrets)
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)


class CCXTExecutionHandler(ExecutionHandler):
    """Market orders, cancels, open orders, balance and positions on a ccxt exchange (spot)."""

    name = "ccxt"

    def __init__(
        self,
        exchange: str = "binance",
        *,
        sandbox: bool = True,
        config: dict[str, Any] | None = None,
        api_urls: str | dict[str, str] | None = None,
        max_retries: int = 4,
        backoff: float = 0.5,
        backoff_cap: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        ccxt = _ccxt()
        config = dict(config or {})
        for secret_key in ("apiKey", "secret", "password", "privateKey"):
            if secret_key in config:
                raise ConfigError(
                    f"pass exchange credentials through environment variables, not config[{secret_key!r}]",
                    hint=f"set QLM_{exchange.upper()}_API_KEY and QLM_{exchange.upper()}_SECRET",
                    code="SECRET_IN_CONFIG",
                    setting=secret_key,
                )
        if config.get("verbose"):
            raise SecurityError(
                "ccxt's verbose option is refused: it prints every signed request, API key included",
                hint="drop config['verbose']; to debug, enable DEBUG logging of 'ccxt.base.exchange' "
                "(keys and signatures are redacted there)",
                code="VERBOSE_REFUSED",
                setting="verbose",
            )
        if "urls" in config:
            _refuse_insecure_urls(config["urls"], "config['urls']")
        if api_urls is not None:
            _refuse_insecure_urls(api_urls, "api_urls")
        if exchange not in ccxt.exchanges:
            raise ConfigError(
                f"unknown ccxt exchange {exchange!r}",
                hint="see ccxt.exchanges, e.g. 'binance'",
                setting="exchange",
                value=exchange,
            )
        key, secret = exchange_keys(exchange)
        self.exchange_id = exchange
        self._secrets = [s for s in (key, secret) if s]
        _redact_logs(self._secrets)
        options = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, **config.pop("options", {})}
        self.exchange = getattr(ccxt, exchange)(
            {**config, "options": options, **({"apiKey": key, "secret": secret} if key else {})}
        )
        if sandbox:
            self.exchange.set_sandbox_mode(True)
        self.sandbox = sandbox
        if api_urls is not None:
            self._point_at(api_urls)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.backoff_cap = float(backoff_cap)
        self._sleep = sleep
        self._orders: dict[str, Order] = {}
        self._by_exchange_cid: dict[str, str] = {}  # exchange client id -> our client id
        self._symbols: set[str] = set()
        self._last: dict[str, float] = {}
        self._bar: dict[str, int] = {}
        self._nfills: dict[str, int] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return (
            f"<CCXTExecutionHandler {self.exchange_id} sandbox={self.sandbox} "
            f"keys={'set' if self._secrets else 'none'}>"
        )

    def _point_at(self, api_urls: str | dict[str, str]) -> None:
        api = self.exchange.urls["api"]
        if isinstance(api_urls, str):
            base = api_urls.rstrip("/")
            self.exchange.urls["api"] = {
                name: base
                + "/"
                + (url.split("://", 1)[-1].split("/", 1)[1] if "/" in url.split("://", 1)[-1] else "")
                for name, url in api.items()
            }
        else:
            self.exchange.urls["api"] = {**api, **api_urls}

    # -- calls with error mapping and retries ----------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return _SIGNATURE.sub(lambda m: m.group(1) + "=***", text)

    def _delay(self, attempt: int) -> float:
        return min(self.backoff_cap, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)

    def call(
        self,
        what: str,
        fn: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Run a ccxt call; retry network errors/rate limits with backoff; map errors to ExecutionError."""
        ccxt = _ccxt()
        attempt = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except ccxt.NetworkError as exc:  # timeouts, DDoS/rate limits, downtime, connection errors
                if attempt >= self.max_retries:
                    raise self._exhausted(what, exc, attempt + 1) from None
                delay = self._delay(attempt)
                log.warning(
                    "%s %s: %s; retry %d in %.2fs",
                    self.exchange_id,
                    what,
                    type(exc).__name__,
                    attempt + 1,
                    delay,
                )
                self._sleep(delay)
                attempt += 1
            except ccxt.BaseError as exc:
                raise self._map(exc, what) from None

    def _map(self, exc: Exception, what: str) -> ExecutionError:
        ccxt = _ccxt()
        table = (
            (ccxt.InsufficientFunds, "EXCHANGE_INSUFFICIENT_FUNDS", "lower the size or add funds"),
            (
                ccxt.OrderNotFound,
                "EXCHANGE_NOT_FOUND",
                "the order is unknown to the exchange (already filled, cancelled or never placed)",
            ),
            (
                ccxt.InvalidOrder,
                "EXCHANGE_INVALID_ORDER",
                "check size against the market's minimum and "
                "step (exchange.markets[symbol]['limits'/'precision'])",
            ),
            (
                ccxt.AuthenticationError,
                "EXCHANGE_AUTH",
                "check the API key/secret environment variables and the key's permissions",
            ),
            (ccxt.PermissionDenied, "EXCHANGE_AUTH", "the key lacks a permission for this call"),
            (ccxt.BadSymbol, "EXCHANGE_BAD_SYMBOL", "use a unified symbol such as 'BTC/USDT'"),
        )
        code, hint = next(
            ((c, h) for cls, c, h in table if isinstance(exc, cls)),
            ("EXCHANGE_ERROR", "see the exchange's message"),
        )
        return ExecutionError(
            f"{self.exchange_id} {what}: {self._scrub(str(exc))}",
            hint=hint,
            code=code,
            exchange=self.exchange_id,
            operation=what,
            ccxt_error=type(exc).__name__,
        )

    def markets(self) -> dict[str, Any]:
        """The exchange's markets (loaded once, with retries)."""
        if not self.exchange.markets:
            self.call("load markets", self.exchange.load_markets)
        return self.exchange.markets

    # -- ExecutionHandler ------------------------------------------------------------------------------

    def submit(self, order: Order) -> Order:
        """Send a market order (client id as the exchange's client order id); the known order if seen."""
        with self._lock:
            known = self._orders.get(order.client_order_id)
            if known is not None:
                return known
            if order.type != "market":
                raise ExecutionError(
                    "only market orders are supported by the CCXT adapter",
                    code="INVALID_ORDER",
                    hint="use type='market'",
                    client_order_id=order.client_order_id,
                )
            if any(s is not None and s == s for s in (order.sl_stop, order.tp_stop, order.tsl_stop)):
                raise ExecutionError(
                    "protective exits (sl_stop/tp_stop/tsl_stop) are simulated by the paper handler only",
                    hint="drop the stops, or paper-trade with PaperExecutionHandler",
                    code="UNSUPPORTED",
                    client_order_id=order.client_order_id,
                )
            markets = self.markets()
            if order.symbol not in markets:
                raise ExecutionError(
                    f"{self.exchange_id} has no market {order.symbol!r}",
                    code="EXCHANGE_BAD_SYMBOL",
                    hint="use a unified symbol such as 'BTC/USDT'",
                    symbol=order.symbol,
                )
            self._symbols.add(order.symbol)
            amount = self._amount(order)
            amount = float(self.exchange.amount_to_precision(order.symbol, amount))
            response = self._create(order, amount)
            order.target_size = amount
            order.submitted_at = order.arrival_at = time.time()
            order.status = "open"
            self._orders[order.client_order_id] = order
            self._emit_order(order)
            self._update(order, response)
            return order

    def _amount(self, order: Order) -> float:
        if order.size is not None:
            return float(order.size)
        if order.close:
            return abs(self.position(order.symbol))
        price = self._last.get(order.symbol)
        if price is None:
            ticker = self.call("fetch ticker", self.exchange.fetch_ticker, order.symbol)
            price = float(ticker["last"])
        if order.value is not None:
            return order.value / price
        quote = self.markets()[order.symbol]["quote"]
        free = float(self.balance().get(quote, 0.0))
        return (order.cash_fraction or 0.0) * free / price * 0.998  # room for fees and price moves

    def exchange_client_id(self, client_order_id: str) -> str:
        """The unified ``clientOrderId`` this handler sends for the order with this client id."""
        return exchange_client_id(client_order_id, self.exchange_id)

    def _create(self, order: Order, amount: float) -> dict[str, Any]:
        """Place the order; after a network failure look it up, re-send only if it is affirmatively absent."""
        ccxt = _ccxt()
        cid = self.exchange_client_id(order.client_order_id)
        self._by_exchange_cid[cid] = order.client_order_id
        attempt = 0
        while True:
            try:
                return self.exchange.create_order(
                    order.symbol, "market", order.side, amount, None, {"clientOrderId": cid}
                )
            except ccxt.NetworkError as exc:  # the request may or may not have reached the exchange
                failure = exc
            except ccxt.BaseError as exc:
                raise self._map(exc, "create order") from None
            delay = self._delay(attempt)
            log.warning(
                "%s create order %s: %s; looking the order up by client id in %.2fs",
                self.exchange_id,
                cid,
                type(failure).__name__,
                delay,
            )
            self._sleep(delay)  # give the exchange time to register an order that did arrive
            found = self._find_placed(order, cid, amount, failure)
            if found is not None:
                return found
            attempt += 1
            if attempt > self.max_retries:
                raise self._exhausted("create order", failure, attempt,
                                      note=f" (the exchange shows no order {cid}, so none was placed)",
                                      client_order_id=order.client_order_id, exchange_client_order_id=cid)

    def _exhausted(self, what: str, exc: Exception, attempts: int, note: str = "",
                   **context: Any) -> ExecutionError:
        """The error once network retries are used up: rate limited, or the exchange unavailable."""
        import ccxt

        limited = isinstance(exc, ccxt.DDoSProtection)
        return ExecutionError(
            f"{self.exchange_id} {what} failed after {attempts} attempts{note}: {self._scrub(str(exc))}",
            hint="the exchange is rate limiting; slow down" if limited
            else "check the network / exchange status, then retry",
            code="EXCHANGE_RATE_LIMIT" if limited else "EXCHANGE_UNAVAILABLE",
            exchange=self.exchange_id, operation=what, attempts=attempts, ccxt_error=type(exc).__name__,
            **context,
        )

    def _find_placed(
        self, order: Order, cid: str, amount: float, failure: Exception
    ) -> dict[str, Any] | None:
        """The exchange's record of a create that failed on the network; None only if it shows no such order.

        Asks what the exchange supports (``exchange.has``): fetchOrder by client id, then the order
        lists (fetchOrders, or fetchOpenOrders + fetchClosedOrders). Absence counts when the lists
        were read and hold no order that is or might be this one (one with no client id, same side
        and amount); only when the exchange has no lists, a not-found from fetchOrder by client id.
        Otherwise raises ExecutionError ORDER_STATE_UNKNOWN: never a blind (maybe duplicate) re-send.
        """
        has = self.exchange.has
        asked: list[str] = []
        by_id_absent = False
        if has.get("fetchOrder"):
            asked.append("fetchOrder")
            try:
                info = self.call(
                    "fetch order by client id",
                    self.exchange.fetch_order,
                    "",
                    order.symbol,
                    {"clientOrderId": cid},
                )
                if self._same_cid(info.get("clientOrderId"), cid):
                    return info
            except ExecutionError as err:
                by_id_absent = err.context.get("ccxt_error") == "OrderNotFound"
        lists: list[Callable[..., Any]] = []
        if has.get("fetchOrders"):
            lists = [self.exchange.fetch_orders]
        elif has.get("fetchOpenOrders") and has.get("fetchClosedOrders"):
            lists = [self.exchange.fetch_open_orders, self.exchange.fetch_closed_orders]
        lists_absent = bool(lists)
        since = (time.time() - 600) * 1000  # orders older than this are not the one just sent
        for fetch in lists:
            asked.append(fetch.__name__)
            try:
                infos = self.call("look up order", fetch, order.symbol)
            except ExecutionError:
                lists_absent = False
                continue
            for info in infos:
                if self._same_cid(info.get("clientOrderId"), cid):
                    return info
                recent = info.get("timestamp") is None or float(info["timestamp"]) >= since
                if (
                    not info.get("clientOrderId")
                    and recent
                    and info.get("side") == order.side
                    and math.isclose(float(info.get("amount") or 0.0), amount, rel_tol=1e-9)
                ):
                    lists_absent = False  # an order without a client id that may be this one
        if lists_absent or (not lists and by_id_absent):
            return None
        raise ExecutionError(
            f"{self.exchange_id} create order {cid} failed on the network "
            f"({type(failure).__name__}) and the exchange could not tell whether it was placed",
            hint=f"check the exchange for an order with client order id {cid} ({order.side} {amount:g} "
            f"{order.symbol}) before trading on; it was not re-sent, to avoid a duplicate",
            code="ORDER_STATE_UNKNOWN",
            exchange=self.exchange_id,
            operation="create order",
            client_order_id=order.client_order_id,
            exchange_client_order_id=cid,
            asked=asked,
            ccxt_error=type(failure).__name__,
        )

    @staticmethod
    def _same_cid(seen: Any, cid: str) -> bool:
        """Whether an exchange's client order id is ours (Gate returns it with a ``t-`` prefix)."""
        return isinstance(seen, str) and (seen == cid or seen.endswith("-" + cid))

    def _fetch(self, order: Order) -> dict[str, Any]:
        """The exchange's record of one of our orders: by exchange id where known, else by client id."""
        if order.exchange_id is not None:
            return self.call("fetch order", self.exchange.fetch_order, order.exchange_id, order.symbol)
        return self.call(
            "fetch order",
            self.exchange.fetch_order,
            "",
            order.symbol,
            {"clientOrderId": self.exchange_client_id(order.client_order_id)},
        )

    def _update(self, order: Order, info: dict[str, Any]) -> None:
        """Apply an exchange order record: new fills (emitted) and the status."""
        order.exchange_id = str(info.get("id")) if info.get("id") is not None else order.exchange_id
        filled = float(info.get("filled") or 0.0)
        if filled > order.filled + 1e-12:
            part = filled - order.filled
            avg = float(info.get("average") or info.get("price") or math.nan)
            fee_info = info.get("fee") or {}
            total_fee = float(fee_info.get("cost") or 0.0)
            fee = total_fee - order.fees
            prev_cost = order.filled * (order.avg_price if order.filled else 0.0)
            price = (avg * filled - prev_cost) / part if order.filled else avg
            order.filled, order.avg_price, order.fees = filled, avg, total_fee
            k = self._nfills.get(order.client_order_id, 0) + 1
            self._nfills[order.client_order_id] = k
            fill = Fill(
                f"{order.client_order_id}#{k}",
                order.client_order_id,
                order.symbol,
                order.side,
                part,
                price,
                fee,
                time.time(),
                price,
                self._bar.get(order.symbol, -1),
                order.reason,
                order.signal_bar,
            )
            self._emit_fill(fill, order)
        status = {
            "closed": "filled",
            "canceled": "cancelled",
            "cancelled": "cancelled",
            "rejected": "rejected",
            "expired": "cancelled",
        }.get(str(info.get("status")), "partially_filled" if filled else "open")
        if status != order.status:
            order.status = status
            self._emit_order(order)

    def cancel(self, client_order_id: str) -> Order:
        """Cancel a working order by client id; a finished order is returned unchanged."""
        with self._lock:
            order = self._orders.get(client_order_id)
            if order is None:
                raise unknown_order(client_order_id)
            if not order.is_open:
                return order
            try:
                if order.exchange_id is not None:
                    info = self.call(
                        "cancel order", self.exchange.cancel_order, order.exchange_id, order.symbol
                    )
                else:
                    info = self.call(
                        "cancel order",
                        self.exchange.cancel_order,
                        "",
                        order.symbol,
                        {"clientOrderId": self.exchange_client_id(client_order_id)},
                    )
            except ExecutionError as err:
                if err.code != "EXCHANGE_NOT_FOUND":
                    raise
                info = self._fetch(order)
            self._update(order, info)
            return order

    def get_order(self, client_order_id: str) -> Order | None:
        """The order with this client id (placed by this handler), or None."""
        return self._orders.get(client_order_id)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """The exchange's open orders (this handler's Order objects where it placed them)."""
        symbols = [symbol] if symbol is not None else sorted(self._symbols)
        out = []
        for sym in symbols:
            for info in self.call("fetch open orders", self.exchange.fetch_open_orders, sym):
                cid = info.get("clientOrderId")
                ours = self._by_exchange_cid.get(cid) if cid else None
                if cid and ours is None and "-" in cid:
                    ours = self._by_exchange_cid.get(cid.rsplit("-", 1)[1])
                order = self._orders.get(ours) if ours else None
                if order is None:
                    order = Order(
                        sym,
                        info["side"],
                        size=float(info.get("amount") or 0.0) or 1.0,
                        client_order_id=(cid or f"exchange-{info['id']}")[:64],
                    )
                    order.exchange_id, order.status = str(info["id"]), "open"
                out.append(order)
        return out

    def balance(self) -> dict[str, float]:
        """``cash`` (free quote currency of the traded symbols, else USDT) plus free amounts per currency."""
        bal = self.call("fetch balance", self.exchange.fetch_balance)
        free = {cur: float(v or 0.0) for cur, v in (bal.get("free") or {}).items()}
        quote = "USDT"
        if self._symbols:
            quote = self.markets()[sorted(self._symbols)[0]]["quote"]
        return {**free, "cash": free.get(quote, 0.0)}

    def positions(self) -> dict[str, Position]:
        """Spot holdings of the traded symbols' base currencies (total balance)."""
        bal = self.call("fetch balance", self.exchange.fetch_balance)
        total = bal.get("total") or {}
        out = {}
        for sym in sorted(self._symbols):
            size = float(total.get(self.markets()[sym]["base"]) or 0.0)
            if size:
                out[sym] = Position(sym, size)
        return out

    def position(self, symbol: str) -> float:
        """Units of ``symbol``'s base currency held."""
        self._symbols.add(symbol)
        pos = self.positions().get(symbol)
        return 0.0 if pos is None else pos.size

    # -- runner hooks ----------------------------------------------------------------------------------

    def on_bar(
        self,
        symbol: str,
        time_s: float,
        o: float,
        h: float,
        lo: float,
        c: float,
        volume: float = math.nan,
        bar: int = -1,
    ) -> list[Fill]:
        """A new closed bar: remember its price and poll the working orders for fills."""
        self._last[symbol] = c
        self._bar[symbol] = bar
        return self.poll(symbol)

    def poll(self, symbol: str | None = None) -> list[Fill]:
        """Fetch every working order this handler placed and emit new fills."""
        fills: list[Fill] = []
        remove = self.on_fill(lambda f, o: fills.append(f))
        try:
            for order in list(self._orders.values()):
                if order.is_open and (symbol is None or order.symbol == symbol):
                    self._update(order, self._fetch(order))
        finally:
            remove()
        return fills

    def fetch_bars(
        self, symbol: str, timeframe: str = "1h", since: int | None = None, limit: int = 500
    ) -> list[Bar]:
        """OHLCV bars (ms ``since``) as `Bar`s, with retries."""
        rows = self.call("fetch ohlcv", self.exchange.fetch_ohlcv, symbol, timeframe, since, limit)
        return [
            Bar(
                pd.Timestamp(int(r[0]), unit="ms", tz="UTC"),
                float(r[1]),
                float(r[2]),
                float(r[3]),
                float(r[4]),
                float(r[5]),
            )
            for r in rows
        ]


class CCXTFeed:
    """Closed OHLCV bars of one symbol from a ccxt exchange: history from ``since``, then polled live.

    A bar is yielded once the exchange has started the next one (so it is closed). ``stop`` ends it;
    ``max_bars`` bounds it (tests, scheduled runs).
    """

    live = True

    def __init__(
        self,
        handler: CCXTExecutionHandler,
        symbol: str,
        timeframe: str = "1h",
        *,
        since: int | None = None,
        poll_interval: float = 10.0,
        stop: threading.Event | None = None,
        max_bars: int | None = None,
    ) -> None:
        self.handler = handler
        self.symbol = symbol
        self.timeframe = timeframe
        self.since = since
        self.poll_interval = poll_interval
        self.stop = stop or threading.Event()
        self.max_bars = max_bars

    def __iter__(self) -> Iterator[Bar]:
        last: pd.Timestamp | None = None
        since = self.since
        sent = 0
        while not self.stop.is_set():
            bars = self.handler.fetch_bars(self.symbol, self.timeframe, since)
            closed = bars[:-1]  # the newest bar is still forming
            for bar in closed:
                if last is None or bar.time > last:
                    yield bar
                    last = bar.time
                    sent += 1
                    if self.max_bars is not None and sent >= self.max_bars:
                        return
            if last is not None:
                since = int(last.value // 1_000_000) + 1
            if self.stop.wait(self.poll_interval):
                return
