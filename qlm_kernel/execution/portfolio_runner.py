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

from qlm_kernel.engine.kernels import NO_CHANGE
from qlm_kernel.engine.settings import BacktestSettings
from qlm_kernel.errors import ExecutionError
from qlm_kernel.execution.base import ExecutionHandler
from qlm_kernel.execution.feeds import Bar
from qlm_kernel.execution.risk import RiskLimits
from qlm_kernel.execution.runner import Journal, SignalSource, _RunnerCore, intended_sign, take_target
from qlm_kernel.execution.signals import History
from qlm_kernel.execution.types import Order


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


class PortfolioRunner(_RunnerCore):
    """Drives one strategy on several symbols through one `ExecutionHandler`, one timestamp at a time."""

    _refusal_symbol = True

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
        self.symbols = tuple(signals)
        self.signals = dict(signals)
        self.history = {s: History() for s in self.symbols}
        self.last_close: dict[str, float] = {}
        self.times: list[pd.Timestamp] = []
        self.equity: list[float] = []
        self._cid = {s: _cid_symbol(s) for s in self.symbols}
        if len(set(self._cid.values())) != len(self.symbols):
            self._cid = {s: f"{k}{_cid_symbol(s)}" for k, s in enumerate(self.symbols)}
        super().__init__(handler, settings, session_id, risk, journal, publish)

    def _trades(self, symbol: str) -> bool:
        return symbol in self.history

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
            self.last_close[s] = b.close
            pos = self.handler.position(s)
            sig = self.signals[s].at(self.history[s].n - 1, self.history[s])  # the symbol's own bar
            intended = intended_sign(self.handler, s, pos)
            target = take_target(intended, sig, self.settings)
            if target != NO_CHANGE:
                held = pos if intended == ((pos > 0.0) - (pos < 0.0)) else 0.0
                key = order_value(held, int(target), b.close, cash, free, self.settings)
                decisions.append((key, s, int(target), intended, sig, b.close))
        decisions.sort(key=lambda d: d[0])  # stable: ties keep symbol order
        for _key, s, target, intended, sig, close in decisions:
            self._act(s, f"{self.session_id}-{self._cid[s]}-{i}", i, target, intended, sig, close, t)
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
        self._flush_journal(self.bar, None, self.summary)

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

    def _risk_equity(self, price: float) -> float:
        return self._equity()

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
        self._flush_journal(i, time, self.summary)

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
