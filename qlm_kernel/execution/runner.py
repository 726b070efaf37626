"""`PaperRunner`: feed bars one at a time, decide from the strategy's signals, trade through a handler.

Per bar, in this order (the next-open engine's order, so a zero-cost replay reproduces it):

1. the handler sees the bar: orders that have arrived fill at its open, protective exits are
   checked on its high/low;
2. the strategy's signals for this bar are read (recomputed on the bars seen so far, or precomputed
   for a replay proved free of lookahead) and turned into a target position with the engine's rules
   (same-side entry+exit cancel, long+short entries cancel, an opposite entry reverses as two
   orders, no pyramiding, ``direction`` filter). Working orders count as done: the target is taken
   against the position they will leave;
3. orders go through the risk limits to the handler; refusals are recorded (``refusals``), not raised;
4. equity (cash + position at the close) is marked; orders, fills and the handler's state are handed
   to the journal (the store) as one unit, so a crash loses at most the bar in progress.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from qlm_kernel.engine.kernels import NO_CHANGE, decide_target
from qlm_kernel.engine.layout import DIRECTION_CODES
from qlm_kernel.engine.settings import BacktestSettings
from qlm_kernel.errors import ExecutionError
from qlm_kernel.execution.base import ExecutionHandler
from qlm_kernel.execution.feeds import Bar
from qlm_kernel.execution.risk import RiskLimits
from qlm_kernel.execution.signals import BarSignals, History
from qlm_kernel.execution.types import Fill, Order


class Journal(Protocol):
    """Where a runner persists each finished bar (the store, in `paper_trade`)."""

    def bar_done(
        self,
        bar: int,
        time: Any,
        orders: list[Order],
        fills: list[Fill],
        state: dict[str, Any],
        summary: dict[str, Any],
    ) -> None: ...


class SignalSource(Protocol):
    """``at(i, history) -> BarSignals``."""

    def at(self, i: int, history: History) -> BarSignals: ...


def _stop(value: float) -> float | None:
    return None if value != value else value


def intended_sign(handler: ExecutionHandler, symbol: str, pos: float) -> int:
    """The sign of ``symbol``'s position once its working orders have filled."""
    sign = (pos > 0.0) - (pos < 0.0)
    for order in handler.open_orders(symbol):
        sign = 0 if order.close else (1 if order.side == "buy" else -1)
    return int(sign)


def take_target(intended: float, sig: BarSignals, settings: BacktestSettings) -> int:
    """The engine kernel's own rule: the target (+1/0/-1, or NO_CHANGE) from a bar's signals."""
    return int(decide_target(float(intended), bool(sig.el), bool(sig.xl), bool(sig.es), bool(sig.xs),
                             DIRECTION_CODES[settings.direction]))


def entry_order(
    settings: BacktestSettings, symbol: str, client_order_id: str, i: int, target: int, sig: BarSignals
) -> Order:
    """The entry toward ``target`` decided on bar ``i``, sized by ``settings`` (percent of cash, value
    or units capped by cash, all cash by default) with the bar's stops."""
    kw: dict[str, Any] = {"integer": bool(settings.integer)}
    if settings.size is None:
        kw["cash_fraction"] = 1.0
    elif settings.size_type == "percent":
        kw["cash_fraction"] = float(settings.size)
    elif settings.size_type == "units":
        kw.update(size=float(settings.size), cap_to_cash=True)
    else:
        kw.update(value=float(settings.size), cap_to_cash=True)
    return Order(
        symbol,
        "buy" if target > 0 else "sell",
        client_order_id=client_order_id,
        reason="signal",
        signal_bar=i,
        sl_stop=_stop(sig.sl),
        tp_stop=_stop(sig.tp),
        tsl_stop=_stop(sig.tsl),
        **kw,
    )


class _RunnerCore:
    """What `PaperRunner` and `PortfolioRunner` share: the handler's callbacks, order submission through
    the risk limits with refusals recorded (not raised), and the per-bar journal/bus flush."""

    _refusal_symbol = False  # refusals name the symbol (several symbols) or not (one)

    def __init__(
        self,
        handler: ExecutionHandler,
        settings: BacktestSettings,
        session_id: str,
        risk: RiskLimits | None,
        journal: Journal | None,
        publish: Callable[[str, dict[str, Any]], Any] | None,
    ) -> None:
        self.handler = handler
        self.settings = settings
        self.session_id = session_id
        self.risk = risk
        self.journal = journal
        self.publish = publish
        self.refusals: list[dict[str, Any]] = []
        self.fills: list[Fill] = []
        self._bar_fills: list[Fill] = []
        self._changed: dict[str, Order] = {}
        self._all_orders: dict[str, Order] = {}
        self.bar = -1
        equity = getattr(handler, "equity", None)
        self.init_equity = float(equity()) if equity is not None else math.nan
        handler.on_fill(self._on_fill)
        handler.on_order_update(self._on_order)

    # -- hooks ----------------------------------------------------------------------------------------

    def _trades(self, symbol: str) -> bool:
        """Whether ``symbol``'s orders and fills are this runner's."""
        return True

    def _risk_equity(self, price: float) -> float:
        raise NotImplementedError

    # -- callbacks ------------------------------------------------------------------------------------

    def _on_fill(self, fill: Fill, order: Order) -> None:
        if not self._trades(fill.symbol):
            return
        self.fills.append(fill)
        self._bar_fills.append(fill)
        self._changed[order.client_order_id] = order

    def _on_order(self, order: Order) -> None:
        if not self._trades(order.symbol):
            return
        self._changed[order.client_order_id] = order
        self._all_orders[order.client_order_id] = order

    # -- orders ---------------------------------------------------------------------------------------

    def _act(
        self, symbol: str, stem: str, i: int, target: int, intended: float, sig: BarSignals, close: float,
        now: float,
    ) -> None:
        """Submit bar ``i``'s decision: the exit of the intended position, then the entry (ids
        ``<stem>-x`` / ``<stem>-e``)."""
        if intended != 0:
            exit_order = Order(
                symbol,
                "sell" if intended > 0 else "buy",
                close=True,
                client_order_id=f"{stem}-x",
                reason="reversal" if target != 0 else "signal",
                signal_bar=i,
            )
            self._submit(exit_order, close, now)
        if target != 0:
            self._submit(entry_order(self.settings, symbol, f"{stem}-e", i, target, sig), close, now)

    def _submit(self, order: Order, price: float, now: float) -> Order | None:
        try:
            if self.risk is not None:
                cash = self.handler.balance().get("cash", math.nan)
                self.risk.check(
                    order,
                    now=now,
                    position=self.handler.position(order.symbol),
                    equity=self._risk_equity(price),
                    cash=cash,
                    price=price,
                )
            placed = self.handler.submit(order)
        except ExecutionError as err:
            order.status = "rejected"
            order.error = err.to_dict()
            self._changed[order.client_order_id] = order
            self._all_orders[order.client_order_id] = order
            refusal: dict[str, Any] = {"bar": self.bar}
            if self._refusal_symbol:
                refusal["symbol"] = order.symbol
            refusal.update(
                client_order_id=order.client_order_id,
                code=err.code,
                message=err.message,
                error=err.to_dict(),
            )
            self.refusals.append(refusal)
            if self.publish is not None:
                self.publish("paper.order.rejected", {"session_id": self.session_id, **refusal})
            return None
        self._all_orders[placed.client_order_id] = placed
        return placed

    # -- journal --------------------------------------------------------------------------------------

    def _flush_journal(self, i: int, time: Any, summary: Callable[[], dict[str, Any]]) -> None:
        """Hand bar ``i``'s changed orders, fills, handler state and ``summary()`` to the bus and the
        journal (the summary is computed once for both)."""
        orders = list(self._changed.values())
        fills = self._bar_fills
        self._changed = {}
        self._bar_fills = []
        if self.publish is None and self.journal is None:
            return
        numbers = summary()
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
            self.publish("paper.pnl", {"session_id": self.session_id, **numbers})
        if self.journal is not None:
            state_fn = getattr(self.handler, "state", None)
            state = {
                "handler": state_fn() if state_fn is not None else None,
                "bar": i,
                "init_equity": self.init_equity,
            }
            self.journal.bar_done(i, time, orders, fills, state, numbers)


class PaperRunner(_RunnerCore):
    """Drives one strategy on one symbol through an `ExecutionHandler`, bar by bar."""

    def __init__(
        self,
        handler: ExecutionHandler,
        signals: SignalSource,
        settings: BacktestSettings,
        *,
        symbol: str = "ASSET",
        session_id: str = "replay",
        risk: RiskLimits | None = None,
        journal: Journal | None = None,
        publish: Callable[[str, dict[str, Any]], Any] | None = None,
    ) -> None:
        self.signals = signals
        self.symbol = symbol
        self.history = History()
        self.equity: list[float] = []
        self.bars: list[int] = []
        self.prior_orders = 0  # orders and fills of earlier runs of a resumed session
        self.prior_fills = 0
        super().__init__(handler, settings, session_id, risk, journal, publish)

    # -- the loop -------------------------------------------------------------------------------------

    def warm(self, bar: Bar) -> None:
        """Add a bar to the history without trading (a resumed session re-reading its past)."""
        self.history.append(bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume)
        self.bar += 1

    def step(self, bar: Bar) -> None:
        """Process one new closed bar (see the module docstring for the order of events)."""
        self.bar += 1
        i = self.bar
        self.history.append(bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume)
        t = bar.time.value / 1e9
        before = self.handler.position(self.symbol)
        on_bar = getattr(self.handler, "on_bar", None)
        if on_bar is not None:
            on_bar(self.symbol, t, bar.open, bar.high, bar.low, bar.close, bar.volume, bar=i)
        pos = self.handler.position(self.symbol)
        sig = self.signals.at(i, self.history)
        intended = float(intended_sign(self.handler, self.symbol, pos))
        target = take_target(intended, sig, self.settings)
        if target != NO_CHANGE:
            self._act(self.symbol, f"{self.session_id}-{i}", i, target, intended, sig, bar.close, t)
        self._mark(i, bar, t, before)

    def finish(self, *, close_at_end: bool | None = None) -> None:
        """End of the feed: with ``close_at_end`` cancel working orders and close at the last close."""
        close = self.settings.close_at_end if close_at_end is None else close_at_end
        if not close or self.bar < 0:
            return
        for order in self.handler.open_orders(self.symbol):
            self.handler.cancel(order.client_order_id)
        pos = self.handler.position(self.symbol)
        if pos != 0.0:
            order = Order(
                self.symbol,
                "sell" if pos > 0 else "buy",
                close=True,
                client_order_id=f"{self.session_id}-end",
                reason="end",
                signal_bar=self.bar,
            )
            self._submit(order, self.history.last_close, math.nan)
            flush = getattr(self.handler, "flush", None)
            if flush is not None:
                flush(self.symbol)
        if self.equity:
            self.equity[-1] = self._equity(self.history.last_close)
        self._flush_journal(self.bar, None, lambda: self.summary(self.history.last_close))

    # -- internals ------------------------------------------------------------------------------------

    def _risk_equity(self, price: float) -> float:
        return self._equity(price)

    def _equity(self, price: float) -> float:
        equity = getattr(self.handler, "equity", None)
        if equity is not None:
            return float(equity())
        cash = self.handler.balance().get("cash", math.nan)
        return cash + self.handler.position(self.symbol) * price

    def _mark(self, i: int, bar: Bar, t: float, before: float) -> None:
        eq = self._equity(bar.close)
        if math.isnan(self.init_equity):
            self.init_equity = eq
        self.equity.append(eq)
        self.bars.append(i)
        if self.risk is not None:
            self.risk.observe(t, eq)
        if self.publish is not None:
            pos = self.handler.position(self.symbol)
            if pos != before:
                self.publish(
                    "paper.position",
                    {
                        "session_id": self.session_id,
                        "symbol": self.symbol,
                        "size": pos,
                        "bar": i,
                        "price": bar.close,
                    },
                )
        self._flush_journal(i, bar.time, lambda: self.summary(bar.close))

    def summary(self, close: float | None = None) -> dict[str, Any]:
        """JSON-safe headline numbers: bar, position, cash, equity, pnl, counts."""
        price = self.history.last_close if close is None else close
        eq = self._equity(price) if self.history.n else self.init_equity
        cash = self.handler.balance().get("cash", math.nan)
        return {
            "bars_processed": self.bar + 1,
            "position": self.handler.position(self.symbol),
            "cash": cash,
            "equity": eq,
            "pnl": eq - self.init_equity if not math.isnan(self.init_equity) else 0.0,
            "price": price,
            "n_orders": self.prior_orders + len(self._all_orders),
            "n_fills": self.prior_fills + len(self.fills),
            "n_refused": len(self.refusals),
        }

    def equity_array(self) -> np.ndarray:
        """Equity at every bar processed in this run."""
        return np.asarray(self.equity, dtype=np.float64)
