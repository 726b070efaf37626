"""`PortfolioRunner`: one strategy on several symbols through one `ExecutionHandler` (one account).

The multi-symbol `PaperRunner`: each symbol keeps its own bar history and signal source (the single
runner's `FullSignals` / `IncrementalSignals`), every symbol's orders go to the same handler and so
draw on the same cash. One `step` is one timestamp of the union of the symbols' bars; symbols without
a bar then do not trade (their signals are not read; a working order waits for their next bar; they
are valued at their last close), as in the portfolio backtest. Per step, in this order:

1. the handler sees the bars: orders that have arrived fill at each symbol's open, in increasing order
   of their estimated value (`order_value`, the portfolio engine's ``call_seq="auto"`` rule: sells,
   which free cash, before buys; ties in symbol order), then protective exits are checked. The paper
   broker is given that sequence (`PaperExecutionHandler.on_bars`); a handler with only ``on_bar``
   (the CCXT adapter) is polled symbol by symbol;
2. each symbol with a bar reads its signals and takes a target with the engine's rules
   (`decide_target`, as `PaperRunner`);
3. the step's decisions are submitted sorted by the same estimated value at the close (exit then entry
   within a symbol), so on an exchange that fills market orders at once (CCXT) the sells go first too;
   entries are sized from the cash the handler has when they fill (``size``/``size_type`` as in the
   single runner: percent of cash, value or units capped by cash, all cash by default); risk limits are
   checked per order (``max_position`` per symbol);
4. equity (cash + every position at its last close) is marked, and orders, fills and the handler's
   state go to the journal as one unit; events are published on the bus.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.engine.kernels import NO_CHANGE, decide_target
from qlm_kernel.engine.layout import DIRECTION_CODES
from qlm_kernel.engine.settings import BacktestSettings
from qlm_kernel.errors import ExecutionError
from qlm_kernel.execution.base import ExecutionHandler
from qlm_kernel.execution.feeds import Bar
from qlm_kernel.execution.risk import RiskLimits
from qlm_kernel.execution.runner import Journal, SignalSource, _stop
from qlm_kernel.execution.signals import BarSignals, History
from qlm_kernel.execution.types import Fill, Order


def order_value(
    pos: float, target: int, price: float, cash: float, free: float, settings: BacktestSettings
) -> float:
    """Estimated signed value of the order(s) taking ``pos`` units to ``target`` (+1/0/-1) at ``price``:
    the sort key of a step's orders (negative = sells). The portfolio engine's estimate term for term
    (`engine.group_kernels`): closing ``pos`` is worth -pos x price; an entry ``size`` x cash (percent,
    a long), ``size`` x buying power ``free`` (percent, a short), ``size`` (value), ``size`` x price
    (units) or infinity (all cash), with the target's sign."""
    value = -pos * price if pos != 0.0 else 0.0
    if target != 0:
        size = settings.size
        if size is None:
            est = math.inf
        elif settings.size_type == "percent":
            est = size * (cash if target > 0 else max(free, 0.0))
        elif settings.size_type == "value":
            est = float(size)
        else:
            est = size * price
        value += target * est
    return value


def _cid_symbol(symbol: str) -> str:
    return "".join(ch for ch in symbol if ch.isalnum())[:16] or "S"


class PortfolioRunner:
    """Drives one strategy on several symbols through one `ExecutionHandler`, one timestamp at a time."""

    def __init__(
        self,
        handler: ExecutionHandler,
        signals: Mapping[str, SignalSource],
        settings: BacktestSettings,
        *,
        session_id: str = "replay",
        risk: RiskLimits | None = None,
        journal: Journal | None = None,
        publish: Callable[[str, dict[str, Any]], Any] | None = None,
    ) -> None:
        self.handler = handler
        self.symbols = tuple(signals)
        self.signals = dict(signals)
        self.settings = settings
        self.session_id = session_id
        self.risk = risk
        self.journal = journal
        self.publish = publish
        self.history = {s: History() for s in self.symbols}
        self.local = dict.fromkeys(self.symbols, -1)  # each symbol's own bar count - 1
        self.last_close: dict[str, float] = {}
        self.times: list[pd.Timestamp] = []
        self.equity: list[float] = []
        self.refusals: list[dict[str, Any]] = []
        self.fills: list[Fill] = []
        self._bar_fills: list[Fill] = []
        self._changed: dict[str, Order] = {}
        self._all_orders: dict[str, Order] = {}
        self.bar = -1
        self._cid = {s: _cid_symbol(s) for s in self.symbols}
        if len(set(self._cid.values())) != len(self.symbols):
            self._cid = {s: f"{k}{_cid_symbol(s)}" for k, s in enumerate(self.symbols)}
        equity = getattr(handler, "equity", None)
        self.init_equity = float(equity()) if equity is not None else math.nan
        handler.on_fill(self._on_fill)
        handler.on_order_update(self._on_order)

    # -- callbacks ------------------------------------------------------------------------------------

    def _on_fill(self, fill: Fill, order: Order) -> None:
        if fill.symbol not in self.history:
            return
        self.fills.append(fill)
        self._bar_fills.append(fill)
        self._changed[order.client_order_id] = order

    def _on_order(self, order: Order) -> None:
        if order.symbol not in self.history:
            return
        self._changed[order.client_order_id] = order
        self._all_orders[order.client_order_id] = order

    # -- the loop -------------------------------------------------------------------------------------

    def step(self, time: pd.Timestamp, bars: Mapping[str, Bar]) -> None:
        """Process one timestamp: ``bars`` holds the closed bar of every symbol that has one then."""
        unknown = [s for s in bars if s not in self.history]
        if unknown:
            raise ExecutionError(
                f"bar for {unknown[0]!r}, which this runner does not trade",
                hint=f"symbols: {', '.join(self.symbols)}",
                code="UNKNOWN_SYMBOL",
                symbol=unknown[0],
            )
        self.bar += 1
        i = self.bar
        t = time.value / 1e9
        present = [s for s in self.symbols if s in bars]
        before = {s: self.handler.position(s) for s in present}
        self._see_bars(t, {s: bars[s] for s in present}, i)
        decisions = []
        cash, free = self._cash_and_free()
        for s in present:
            b = bars[s]
            self.history[s].append(b.time, b.open, b.high, b.low, b.close, b.volume)
            self.local[s] += 1
            self.last_close[s] = b.close
            pos = self.handler.position(s)
            sig = self.signals[s].at(self.local[s], self.history[s])
            intended = self._intended(s, pos)
            target = decide_target(
                float(intended),
                bool(sig.el),
                bool(sig.xl),
                bool(sig.es),
                bool(sig.xs),
                DIRECTION_CODES[self.settings.direction],
            )
            if target != NO_CHANGE:
                held = pos if intended == ((pos > 0.0) - (pos < 0.0)) else 0.0
                key = order_value(held, int(target), b.close, cash, free, self.settings)
                decisions.append((key, s, int(target), intended, sig, b.close))
        decisions.sort(key=lambda d: d[0])  # stable: ties keep symbol order
        for _key, s, target, intended, sig, close in decisions:
            self._act(s, i, target, intended, sig, close, t)
        self._mark(i, time, t, before)

    def finish(self, *, close_at_end: bool | None = None) -> None:
        """End of the data: with ``close_at_end`` cancel working orders and close every position at its
        last close (stamped on the last step, as the engine does)."""
        close = self.settings.close_at_end if close_at_end is None else close_at_end
        if not close or self.bar < 0:
            return
        mark = getattr(self.handler, "mark", None)
        flush = getattr(self.handler, "flush", None)
        for s in self.symbols:
            for order in self.handler.open_orders(s):
                self.handler.cancel(order.client_order_id)
            pos = self.handler.position(s)
            if pos == 0.0:
                continue
            if mark is not None:
                mark(s, self.last_close[s], bar=self.bar)
            order = Order(
                s,
                "sell" if pos > 0 else "buy",
                close=True,
                client_order_id=f"{self.session_id}-{self._cid[s]}-end",
                reason="end",
                signal_bar=self.bar,
            )
            self._submit(order, self.last_close[s], math.nan)
            if flush is not None:
                flush(s)
        if self.equity:
            self.equity[-1] = self._equity()
        self._flush_journal(self.bar, None)

    # -- internals ------------------------------------------------------------------------------------

    def _see_bars(self, t: float, bars: dict[str, Bar], i: int) -> None:
        on_bars = getattr(self.handler, "on_bars", None)
        if on_bars is not None:
            cash, free = self._cash_and_free()
            keyed = []
            for s, b in bars.items():
                arrived = [
                    o for o in self.handler.open_orders(s) if o.arrival_at is None or o.arrival_at <= t
                ]
                if not arrived:
                    continue
                entries = [o for o in arrived if not o.close]
                target = 0 if not entries else (1 if entries[-1].side == "buy" else -1)
                keyed.append(
                    (order_value(self.handler.position(s), target, b.open, cash, free, self.settings), s)
                )
            keyed.sort(key=lambda k: k[0])
            on_bars(
                t,
                {s: (b.open, b.high, b.low, b.close, b.volume) for s, b in bars.items()},
                bar=i,
                sequence=[s for _v, s in keyed],
            )
            return
        on_bar = getattr(self.handler, "on_bar", None)
        if on_bar is not None:
            for s, b in bars.items():
                on_bar(s, t, b.open, b.high, b.low, b.close, b.volume, bar=i)

    def _cash_and_free(self) -> tuple[float, float]:
        """Cash, and buying power for shorts' estimates (cash less twice the shorts' entry value)."""
        cash = float(self.handler.balance().get("cash", math.nan))
        debt = getattr(self.handler, "short_debt", None)
        return cash, cash - 2.0 * (float(debt()) if debt is not None else 0.0)

    def _intended(self, symbol: str, pos: float) -> int:
        sign = (pos > 0.0) - (pos < 0.0)
        for order in self.handler.open_orders(symbol):
            sign = 0 if order.close else (1 if order.side == "buy" else -1)
        return int(sign)

    def _act(
        self, s: str, i: int, target: int, intended: int, sig: BarSignals, close: float, now: float
    ) -> None:
        stem = f"{self.session_id}-{self._cid[s]}-{i}"
        if intended != 0:
            self._submit(
                Order(
                    s,
                    "sell" if intended > 0 else "buy",
                    close=True,
                    client_order_id=f"{stem}-x",
                    reason="reversal" if target != 0 else "signal",
                    signal_bar=i,
                ),
                close,
                now,
            )
        if target != 0:
            st = self.settings
            kw: dict[str, Any] = {"integer": bool(st.integer)}
            if st.size is None:
                kw["cash_fraction"] = 1.0
            elif st.size_type == "percent":
                kw["cash_fraction"] = float(st.size)
            elif st.size_type == "units":
                kw.update(size=float(st.size), cap_to_cash=True)
            else:
                kw.update(value=float(st.size), cap_to_cash=True)
            entry = Order(
                s,
                "buy" if target > 0 else "sell",
                client_order_id=f"{stem}-e",
                reason="signal",
                signal_bar=i,
                sl_stop=_stop(sig.sl),
                tp_stop=_stop(sig.tp),
                tsl_stop=_stop(sig.tsl),
                **kw,
            )
            self._submit(entry, close, now)

    def _submit(self, order: Order, price: float, now: float) -> Order | None:
        try:
            if self.risk is not None:
                self.risk.check(
                    order,
                    now=now,
                    position=self.handler.position(order.symbol),
                    equity=self._equity(),
                    cash=self.handler.balance().get("cash", math.nan),
                    price=price,
                )
            placed = self.handler.submit(order)
        except ExecutionError as err:
            order.status = "rejected"
            order.error = err.to_dict()
            self._changed[order.client_order_id] = order
            self._all_orders[order.client_order_id] = order
            refusal = {
                "bar": self.bar,
                "symbol": order.symbol,
                "client_order_id": order.client_order_id,
                "code": err.code,
                "message": err.message,
                "error": err.to_dict(),
            }
            self.refusals.append(refusal)
            if self.publish is not None:
                self.publish("paper.order.rejected", {"session_id": self.session_id, **refusal})
            return None
        self._all_orders[placed.client_order_id] = placed
        return placed

    def _equity(self) -> float:
        equity = getattr(self.handler, "equity", None)
        if equity is not None:
            return float(equity())
        eq = float(self.handler.balance().get("cash", math.nan))
        for s, pos in self.handler.positions().items():
            if s in self.history and pos.size != 0.0:
                eq += pos.size * self.last_close.get(s, math.nan)
        return eq

    def _mark(self, i: int, time: pd.Timestamp, t: float, before: dict[str, float]) -> None:
        eq = self._equity()
        if math.isnan(self.init_equity):
            self.init_equity = eq
        self.equity.append(eq)
        self.times.append(time)
        if self.risk is not None:
            self.risk.observe(t, eq)
        if self.publish is not None:
            for s, was in before.items():
                pos = self.handler.position(s)
                if pos != was:
                    self.publish(
                        "paper.position",
                        {
                            "session_id": self.session_id,
                            "symbol": s,
                            "size": pos,
                            "bar": i,
                            "price": self.last_close[s],
                        },
                    )
        self._flush_journal(i, time)

    def _flush_journal(self, i: int, time: Any) -> None:
        orders = list(self._changed.values())
        fills = self._bar_fills
        self._changed = {}
        self._bar_fills = []
        if self.publish is not None:
            for order in orders:
                self.publish(
                    "paper.order",
                    {
                        "session_id": self.session_id,
                        "client_order_id": order.client_order_id,
                        "symbol": order.symbol,
                        "side": order.side,
                        "status": order.status,
                        "reason": order.reason,
                        "filled": order.filled,
                        "bar": i,
                    },
                )
            for fill in fills:
                self.publish("paper.fill", {"session_id": self.session_id, **fill.to_dict()})
            self.publish("paper.pnl", {"session_id": self.session_id, **self.summary()})
        if self.journal is not None:
            state_fn = getattr(self.handler, "state", None)
            state = {
                "handler": state_fn() if state_fn is not None else None,
                "bar": i,
                "init_equity": self.init_equity,
            }
            self.journal.bar_done(i, time, orders, fills, state, self.summary())

    def summary(self) -> dict[str, Any]:
        """JSON-safe headline numbers: steps, positions by symbol, cash, equity, pnl, counts."""
        eq = self._equity() if self.bar >= 0 else self.init_equity
        return {
            "bars_processed": self.bar + 1,
            "positions": {s: p.size for s, p in self.handler.positions().items() if s in self.history},
            "position": None,  # one number per symbol: see "positions"
            "price": None,
            "cash": self.handler.balance().get("cash", math.nan),
            "equity": eq,
            "pnl": eq - self.init_equity if not math.isnan(self.init_equity) else 0.0,
            "n_orders": len(self._all_orders),
            "n_fills": len(self.fills),
            "n_refused": len(self.refusals),
        }

    def equity_array(self) -> np.ndarray:
        """Equity at every step processed."""
        return np.asarray(self.equity, dtype=np.float64)
