"""`PaperExecutionHandler`: a simulated broker with latency, slippage, fees and volume limits.

Fill model (stated in docs/trading.md "The paper broker"):

- **Latency.** An order submitted at clock time ``t`` arrives at ``t + latency`` (default 0.1 s).
  Prices come from bars handed to `on_bar`; an arrived order fills at the open of the first bar whose
  time is at/after its arrival. On the simulated clock a decision at bar i is stamped with bar i's
  timestamp, so a latency shorter than the bar spacing fills at bar i+1's open (the next-open
  backtest) and every further bar spacing of latency delays the fill by one bar.
- **Slippage** (default 5 bps = 0.0005) moves every market and protective fill against the trader:
  buys at price x (1 + slippage), sells at price x (1 - slippage).
- **Fees**: |units| x fill price x ``fees`` + ``fixed_fees`` per fill.
- **Volume participation** (optional ``max_participation``): a bar fills at most that fraction of
  its volume across all orders; the rest stays working for the next bar (partial fills).
- **Cash** (1x leverage, as the engine): an order that increases exposure needs
  |position after| x fill price x (1 + fees) + fixed fees <= equity at the fill; shorts receive the
  sale proceeds. Refused orders raise (at submit) or end ``rejected`` (at the fill) with
  ``ExecutionError`` codes INSUFFICIENT_CASH / SIZE_LIMIT / INVALID_ORDER.
- **Protective exits** attached to an order (``sl_stop``, ``tp_stop``, ``tsl_stop``, fractions of
  the unslipped fill price) follow the engine's rules: checked on each bar's high/low from the fill
  bar on, the protective stop (tighter of stop-loss and trailing) before the take-profit, a bar
  opening beyond a level fills at the open, the trailing reference is the best high (long) / low
  (short) of the bars before the current one. They rest at the simulated exchange (no latency) and
  are not volume-limited.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from qlm_kernel.engine import layout as L
from qlm_kernel.engine.kernels import N_PS, PS_REF, PS_SL, PS_TP, PS_TRAIL, PS_TSL, entry_units, stop_level
from qlm_kernel.engine.layout import EXIT_REASONS
from qlm_kernel.errors import ConfigError, ExecutionError
from qlm_kernel.execution.base import ExecutionHandler, unknown_order
from qlm_kernel.execution.clock import Clock, SimulatedClock
from qlm_kernel.execution.types import Fill, Order, Position

_PS_SLOTS = ((PS_REF, "ref"), (PS_TRAIL, "trail"), (PS_SL, "sl"), (PS_TP, "tp"), (PS_TSL, "tsl"))

DEFAULT_LATENCY = 0.1  # seconds
DEFAULT_SLIPPAGE = 0.0005  # 5 bps
_TOL = 1e-9  # relative tolerance of the cash check (float noise, never a real overdraft)


class PaperExecutionHandler(ExecutionHandler):
    """A deterministic simulated broker: orders fill against the bars the runner feeds it."""

    name = "paper"

    def __init__(
        self,
        *,
        cash: float = 10_000.0,
        latency: float = DEFAULT_LATENCY,
        slippage: float = DEFAULT_SLIPPAGE,
        fees: float = 0.0,
        fixed_fees: float = 0.0,
        max_participation: float | None = None,
        max_order_size: float | None = None,
        max_order_value: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        _check("cash", cash, low=0.0, low_open=True)
        _check("latency", latency, low=0.0)
        _check("slippage", slippage, low=0.0, high=1.0)
        _check("fees", fees, low=0.0, high=1.0)
        _check("fixed_fees", fixed_fees, low=0.0)
        for name, value in (
            ("max_participation", max_participation),
            ("max_order_size", max_order_size),
            ("max_order_value", max_order_value),
        ):
            if value is not None:
                _check(name, value, low=0.0, low_open=True, high=1.0 if name == "max_participation" else None)
        self.cash = float(cash)
        self.latency = float(latency)
        self.slippage = float(slippage)
        self.fees = float(fees)
        self.fixed_fees = float(fixed_fees)
        self.max_participation = max_participation
        self.max_order_size = max_order_size
        self.max_order_value = max_order_value
        self.clock: Clock = clock if clock is not None else SimulatedClock()
        self._orders: dict[str, Order] = {}
        self._working: list[str] = []
        self._known: set[str] = set()  # client ids seen before a restore (finished, in the store)
        self._positions: dict[str, Position] = {}
        self._protect: dict[str, dict[str, Any]] = {}
        self._last: dict[str, float] = {}
        self._bar: dict[str, int] = {}
        self._nfills: dict[str, int] = {}

    # -- ExecutionHandler -----------------------------------------------------------------------------

    def submit(self, order: Order) -> Order:
        """Accept ``order`` (arrives after ``latency``); the known order if its client id was seen."""
        known = self._orders.get(order.client_order_id)
        if known is not None:
            return known
        if order.client_order_id in self._known:
            raise ExecutionError(
                f"order {order.client_order_id!r} was already submitted in this session",
                hint="client order ids are idempotency keys; use a new id for a new order",
                code="DUPLICATE_ORDER",
                client_order_id=order.client_order_id,
            )
        self._check_submit(order)
        now = self.clock.now()
        order.submitted_at = now
        order.arrival_at = now + self.latency
        order.status = "open"
        self._orders[order.client_order_id] = order
        self._working.append(order.client_order_id)
        self._emit_order(order)
        return order

    def cancel(self, client_order_id: str) -> Order:
        """Cancel a working order at once (the simulated exchange has no cancel latency)."""
        order = self._orders.get(client_order_id)
        if order is None:
            raise unknown_order(client_order_id)
        if order.is_open:
            order.status = "cancelled"
            self._working.remove(client_order_id)
            self._emit_order(order)
        return order

    def get_order(self, client_order_id: str) -> Order | None:
        """The order with this client id, or None."""
        return self._orders.get(client_order_id)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Working orders in submission order."""
        orders = [self._orders[cid] for cid in self._working]
        return [o for o in orders if symbol is None or o.symbol == symbol]

    def positions(self) -> dict[str, Position]:
        """Non-zero positions by symbol."""
        return {s: p for s, p in self._positions.items() if p.size != 0.0}

    def position(self, symbol: str) -> float:
        """Signed units held in ``symbol``."""
        pos = self._positions.get(symbol)
        return 0.0 if pos is None else pos.size

    def balance(self) -> dict[str, float]:
        """Cash and equity (positions marked at the last price seen)."""
        return {"cash": self.cash, "equity": self.equity()}

    def equity(self) -> float:
        """Cash plus every position marked at its last price (the engine's equity)."""
        eq = self.cash
        for symbol, pos in self._positions.items():
            if pos.size != 0.0:
                eq = eq + pos.size * self._last[symbol]
        return eq

    def orders(self) -> list[Order]:
        """Every order this handler holds (since creation or the last restore), in submission order."""
        return list(self._orders.values())

    # -- the market -----------------------------------------------------------------------------------

    def on_bar(
        self,
        symbol: str,
        time: float,
        o: float,
        h: float,
        lo: float,
        c: float,
        volume: float = math.nan,
        bar: int = -1,
    ) -> list[Fill]:
        """A new bar: fill arrived orders at its open, then check protective exits on its range.

        ``time`` is the bar's epoch seconds (the simulated clock is moved there). Returns the fills.
        """
        return self.on_bars(time, {symbol: (o, h, lo, c, volume)}, bar=bar)

    def on_bars(
        self,
        time: float,
        bars: Mapping[str, tuple[float, float, float, float, float]],
        *,
        bar: int = -1,
        sequence: Iterable[str] = (),
    ) -> list[Fill]:
        """Bars of several symbols at one time (``{symbol: (open, high, low, close, volume)}``).

        First every symbol's arrived orders fill at its open, symbol by symbol in ``sequence`` order
        (the rest in ``bars`` order; within a symbol in submission order), so a multi-symbol runner
        decides which orders use the cash first (sells before buys); then protective exits are checked
        on each symbol's range; last the closes become the symbols' last prices. Symbols without a bar
        at this time are not touched. Returns the fills in execution order.
        """
        if isinstance(self.clock, SimulatedClock):
            self.clock.set(time)
        now = self.clock.now()
        given = [s for s in sequence if s in bars]
        order = list(dict.fromkeys(given + [s for s in bars if s not in given]))
        fills: list[Fill] = []
        for symbol in order:
            self._bar[symbol] = bar
            o, _h, _lo, _c, volume = bars[symbol]
            room = math.inf
            if self.max_participation is not None:
                room = self.max_participation * volume if volume == volume else 0.0
            for cid in list(self._working):
                working = self._orders[cid]
                if working.symbol != symbol or working.arrival_at is None or working.arrival_at > now:
                    continue
                fill = self._execute(working, o, bar, room)
                if fill is not None:
                    fills.append(fill)
                    room -= fill.size
        for symbol, (o, h, lo, _c, _v) in bars.items():
            pos = self._positions.get(symbol)
            if pos is not None and pos.size != 0.0 and symbol in self._protect:
                fill = self._protective(symbol, pos.size, o, h, lo, bar)
                if fill is not None:
                    fills.append(fill)
        for symbol, (_o, _h, _lo, c, _v) in bars.items():
            self._last[symbol] = c
        return fills

    def short_debt(self) -> float:
        """Entry value (fill price x units) of the short positions held."""
        return sum(-p.size * p.avg_price for p in self._positions.values() if p.size < 0.0)

    def buying_power(self) -> float:
        """Cash an entry may use: cash less twice each short's entry value (its proceeds and as much
        again as collateral: a short's proceeds cannot buy another symbol), the portfolio engine's
        leverage-1 rule; within 1e-11 (relative) of zero it is rounding residue and counts as none.
        With no shorts held it is the cash."""
        debt = self.short_debt()
        power = self.cash - 2.0 * debt
        return 0.0 if power <= 1e-11 * (abs(self.cash) + 2.0 * debt) else power

    def flush(self, symbol: str) -> list[Fill]:
        """Fill every working order in ``symbol`` now at the last price, ignoring latency and volume.

        Ends a replay (``close_at_end``: the engine closes at the last close with costs).
        """
        if symbol not in self._last:
            return []
        fills = []
        for cid in list(self._working):
            order = self._orders[cid]
            if order.symbol == symbol:
                fill = self._execute(order, self._last[symbol], self._bar.get(symbol, -1), math.inf)
                if fill is not None:
                    fills.append(fill)
        return fills

    def mark(self, symbol: str, price: float, bar: int = -1) -> None:
        """Set the last price of ``symbol`` without trading (restoring or warming up a session)."""
        self._last[symbol] = float(price)
        self._bar[symbol] = bar

    # -- state for crash recovery ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """JSON-ready snapshot: cash, positions, protective exits, working orders, last prices."""
        return {
            "cash": self.cash,
            "positions": {s: p.to_dict() for s, p in self._positions.items()},
            "protect": {s: dict(p) for s, p in self._protect.items()},
            "working": [self._orders[cid].to_dict() for cid in self._working],
            "last": dict(self._last),
            "bar": dict(self._bar),
            "nfills": {cid: self._nfills[cid] for cid in self._working if cid in self._nfills},
            "clock": self.clock.now() if isinstance(self.clock, SimulatedClock) else None,
        }

    def restore(self, state: dict[str, Any], known_ids: Iterable[str] = ()) -> None:
        """Load a `state()` snapshot; ``known_ids`` are client ids already used (never placed again)."""
        self.cash = float(state["cash"])
        self._positions = {s: Position(**p) for s, p in state.get("positions", {}).items()}
        self._protect = {s: dict(p) for s, p in state.get("protect", {}).items()}
        self._orders = {}
        self._working = []
        for data in state.get("working", []):
            order = Order.from_dict(data)
            self._orders[order.client_order_id] = order
            self._working.append(order.client_order_id)
        self._last = {s: float(v) for s, v in state.get("last", {}).items()}
        self._bar = {s: int(v) for s, v in state.get("bar", {}).items()}
        self._nfills = {cid: int(k) for cid, k in state.get("nfills", {}).items()}
        if state.get("clock") is not None and isinstance(self.clock, SimulatedClock):
            self.clock.set(state["clock"])
        self._known = set(known_ids) - set(self._orders)

    # -- internals ------------------------------------------------------------------------------------

    def _check_submit(self, order: Order) -> None:
        """Refusals that need no price: size limits, closing nothing; cash when the price is known."""
        if order.size is not None and self.max_order_size is not None and order.size > self.max_order_size:
            raise _size_limit(order, f"size {order.size} is over max_order_size={self.max_order_size}")
        last = self._last.get(order.symbol)
        if last is None:
            return
        value = None if order.size is None else order.size * last
        if value is not None and self.max_order_value is not None and value > self.max_order_value:
            raise _size_limit(
                order,
                f"value {value:.2f} at the last price {last} is over max_order_value={self.max_order_value}",
            )
        if (
            order.value is not None
            and self.max_order_value is not None
            and order.value > self.max_order_value
        ):
            raise _size_limit(order, f"value {order.value} is over max_order_value={self.max_order_value}")
        if order.size is not None and not order.cap_to_cash:
            signed = order.size if order.side == "buy" else -order.size
            pos = self.position(order.symbol)
            if not self._affordable(pos, pos + signed, last):
                raise _no_cash(order, self.cash, f"at the last price {last}")

    def _affordable(self, pos: float, after: float, price: float) -> bool:
        if abs(after) <= abs(pos) and (after == 0.0 or (after > 0) == (pos > 0)):
            return True  # reduces exposure
        adj = price * (1.0 + self.slippage * (1.0 if after > pos else -1.0))
        need = abs(after) * adj * (1.0 + self.fees) + self.fixed_fees
        equity = self.cash + pos * price
        return need <= equity * (1.0 + _TOL)

    def _units(self, order: Order, price: float, adj: float, pos: float) -> float:
        """Units to trade for ``order`` at ``price`` (slipped ``adj``); 0 = cannot be afforded."""
        if order.close:
            return abs(pos)
        if order.target_size is not None:  # a partially filled order keeps its size
            return order.target_size - order.filled
        fees, fixed = self.fees, self.fixed_fees
        if pos == 0.0 and (order.cash_fraction is not None or order.cap_to_cash):
            return self._entry_units(order, price)
        if order.cash_fraction is not None:
            units = ((order.cash_fraction * self.cash - fixed) / (1.0 + fees)) / adj
        else:
            units = order.size if order.size is not None else order.value / price  # type: ignore[operator]
            if order.cap_to_cash:
                if pos == 0.0:
                    affordable = ((self.cash - fixed) / (1.0 + fees)) / adj
                else:
                    same = (pos > 0) == (order.side == "buy")
                    equity = self.cash + pos * price
                    affordable = ((equity - fixed) / (1.0 + fees)) / adj - (abs(pos) if same else -abs(pos))
                if units > affordable:
                    units = affordable
        if order.integer:
            units = math.floor(units)
        return units if units > 0.0 else 0.0

    def _entry_units(self, order: Order, price: float) -> float:
        """Units of an entry from flat, by the engine kernel's own sizing rule (`entry_units`: all cash,
        a fraction of it, units or value capped to what cash affords, whole units), so paper fills size
        exactly as backtests do."""
        cfg = np.zeros(L.N_CFG)
        cfg[L.CFG_FEES], cfg[L.CFG_FIXED_FEES] = self.fees, self.fixed_fees
        cfg[L.CFG_SLIPPAGE] = self.slippage
        cfg[L.CFG_LEVERAGE] = 1.0  # a paper account is a cash account
        cfg[L.CFG_INTEGER] = float(bool(order.integer))
        if order.cash_fraction is not None:
            cfg[L.CFG_SIZE_TYPE], cfg[L.CFG_SIZE] = L.SIZE_PERCENT, order.cash_fraction
        elif order.size is not None:
            cfg[L.CFG_SIZE_TYPE], cfg[L.CFG_SIZE] = L.SIZE_UNITS, order.size
        else:
            cfg[L.CFG_SIZE_TYPE], cfg[L.CFG_SIZE] = L.SIZE_VALUE, order.value
        sign = 1 if order.side == "buy" else -1
        units, _adj, _fee = entry_units(sign, float(price), float(self.buying_power()), cfg)
        return float(units)

    def _execute(self, order: Order, price: float, bar: int, room: float) -> Fill | None:
        """Fill (part of) ``order`` at market ``price``; None when nothing could fill."""
        sign = 1.0 if order.side == "buy" else -1.0
        adj = price * (1.0 + self.slippage * sign)
        pos_obj = self._positions.get(order.symbol)
        pos = 0.0 if pos_obj is None else pos_obj.size
        if order.close and (pos == 0.0 or (pos > 0) == (order.side == "buy")):
            self._finish(
                order,
                "cancelled",
                ExecutionError(
                    f"order {order.client_order_id!r} closes a position in {order.symbol} that is not there "
                    f"(position {pos})",
                    hint="nothing to do: the position was already closed",
                    code="NOTHING_TO_CLOSE",
                    client_order_id=order.client_order_id,
                ),
            )
            return None
        units = self._units(order, price, adj, pos)
        if order.target_size is None:
            if units <= 0.0:
                self._finish(order, "rejected", _no_cash(order, self.cash, f"at the fill price {adj}"))
                return None
            if self.max_order_size is not None and units > self.max_order_size * (1.0 + _TOL):
                self._finish(
                    order,
                    "rejected",
                    _size_limit(
                        order, f"size {units} at the fill is over max_order_size={self.max_order_size}"
                    ),
                )
                return None
            if self.max_order_value is not None and units * price > self.max_order_value * (1.0 + _TOL):
                self._finish(
                    order,
                    "rejected",
                    _size_limit(
                        order,
                        f"value {units * price:.2f} at the fill is over "
                        f"max_order_value={self.max_order_value}",
                    ),
                )
                return None
            order.target_size = units
        part = min(units, room) if room < math.inf else units
        if not part > 0.0:
            return None  # no volume left in this bar: stays working
        signed = part * sign
        checked = not order.close and not order.cap_to_cash and order.cash_fraction is None
        if checked and not self._affordable(pos, pos + signed, price):
            self._finish(order, "rejected", _no_cash(order, self.cash, f"at the fill price {adj}"))
            return None
        fee = part * adj * self.fees + self.fixed_fees
        fill = self._book(order, part, adj, fee, price, bar, order.reason)
        done = (
            self.position(order.symbol) == 0.0
            if order.close
            else (order.filled >= (order.target_size or 0.0) * (1.0 - 1e-12))
        )
        if done:
            self._finish(order, "filled")
        else:
            order.status = "partially_filled"
        return fill

    def _book(
        self, order: Order, units: float, adj: float, fee: float, ref: float, bar: int, reason: str
    ) -> Fill:
        """Apply a fill to cash, position, protective exits and the order; notify listeners."""
        sign = 1.0 if order.side == "buy" else -1.0
        signed = units * sign
        symbol = order.symbol
        pos = self._positions.setdefault(symbol, Position(symbol))
        before = pos.size
        self.cash -= adj * signed + fee  # the engine's cash update, term for term
        _apply(pos, signed, adj)
        order.fees += fee
        prev = order.filled
        order.filled = prev + units
        order.avg_price = adj if prev == 0.0 else (order.avg_price * prev + adj * units) / order.filled
        if pos.size == 0.0 or (before != 0.0 and (pos.size > 0) != (before > 0)):
            self._protect.pop(symbol, None)
        if before == 0.0 or (pos.size != 0.0 and (pos.size > 0) != (before > 0)):
            self._attach(symbol, order, ref)
        k = self._nfills.get(order.client_order_id, 0) + 1
        self._nfills[order.client_order_id] = k
        fill = Fill(
            fill_id=f"{order.client_order_id}#{k}",
            client_order_id=order.client_order_id,
            symbol=symbol,
            side=order.side,
            size=units,
            price=adj,
            fee=fee,
            time=self.clock.now(),
            ref_price=ref,
            bar=bar,
            reason=reason,
            signal_bar=order.signal_bar,
        )
        self._emit_fill(fill, order)
        return fill

    def _attach(self, symbol: str, order: Order, ref: float) -> None:
        stops = (order.sl_stop, order.tp_stop, order.tsl_stop)
        if all(s is None or s != s for s in stops):
            return
        self._protect[symbol] = {
            "ref": ref,
            "trail": ref,
            "sl": math.nan if order.sl_stop is None else float(order.sl_stop),
            "tp": math.nan if order.tp_stop is None else float(order.tp_stop),
            "tsl": math.nan if order.tsl_stop is None else float(order.tsl_stop),
            "parent": order.client_order_id,
            "signal_bar": order.signal_bar,
        }

    def _protective(self, symbol: str, pos: float, oi: float, hi: float, li: float, bar: int) -> Fill | None:
        """The engine's own intrabar stop check (`qlm_kernel.engine.kernels.stop_level`) on this bar."""
        ps = self._protect[symbol]
        state = np.full(N_PS, np.nan)
        for slot, key in _PS_SLOTS:
            state[slot] = ps[key]
        level, code = stop_level(state, pos, oi, hi, li)
        ps["trail"] = float(state[PS_TRAIL])  # the trailing reference moves after the check, as in the engine
        reason = EXIT_REASONS[code] if code >= 0 else ""
        if level != level:
            return None
        child = Order(
            symbol,
            "sell" if pos > 0 else "buy",
            close=True,
            client_order_id=f"{ps['parent']}-{reason[:2]}"[:64],
            reason=reason,
            signal_bar=ps["signal_bar"],
        )
        child.submitted_at = child.arrival_at = self.clock.now()
        child.status = "open"
        child.target_size = abs(pos)
        self._orders[child.client_order_id] = child
        self._emit_order(child)
        sign = 1.0 if child.side == "buy" else -1.0
        adj = level * (1.0 + self.slippage * sign)
        fill = self._book(
            child, abs(pos), adj, abs(pos) * adj * self.fees + self.fixed_fees, level, bar, reason
        )
        child.status = "filled"
        self._emit_order(child)
        return fill

    def _finish(self, order: Order, status: str, error: ExecutionError | None = None) -> None:
        order.status = status
        if error is not None:
            order.error = error.to_dict()
        if order.client_order_id in self._working:
            self._working.remove(order.client_order_id)
        self._emit_order(order)


def _apply(pos: Position, signed: float, price: float) -> None:
    """Update size, average price and realized P&L of ``pos`` by a fill of ``signed`` units."""
    before = pos.size
    after = before + signed
    if before == 0.0 or (before > 0) == (signed > 0):
        pos.avg_price = (
            price if before == 0.0 else (pos.avg_price * abs(before) + price * abs(signed)) / abs(after)
        )
    else:
        closed = min(abs(signed), abs(before))
        pos.realized_pnl += (price - pos.avg_price) * closed * (1.0 if before > 0 else -1.0)
        if after == 0.0 or abs(after) < 1e-12 * max(abs(before), 1.0):
            after = 0.0
            pos.avg_price = math.nan
        elif (after > 0) != (before > 0):
            pos.avg_price = price
    pos.size = after


def _no_cash(order: Order, cash: float, where: str) -> ExecutionError:
    return ExecutionError(
        f"order {order.client_order_id!r} ({order.side} {order.symbol}) needs more cash than the "
        f"{cash:.2f} available {where}",
        hint="lower the size, use cash_fraction/cap_to_cash sizing, or add cash (leverage is 1x)",
        code="INSUFFICIENT_CASH",
        client_order_id=order.client_order_id,
        cash=cash,
    )


def _size_limit(order: Order, what: str) -> ExecutionError:
    return ExecutionError(
        f"order {order.client_order_id!r}: {what}",
        hint="split the order or raise the handler's max_order_size/max_order_value",
        code="SIZE_LIMIT",
        client_order_id=order.client_order_id,
    )


def _check(
    name: str, value: Any, *, low: float | None = None, high: float | None = None, low_open: bool = False
) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        raise ConfigError(
            f"{name}={value!r} is not a valid number for the paper handler",
            hint=f"{name} must be a finite number"
            + (f" {'>' if low_open else '>='} {low}" if low is not None else "")
            + (f" and <= {high}" if high is not None else ""),
            setting=name,
            value=repr(value),
        )
