"""`ExecutionHandler`: the one interface the paper trader, the CCXT adapter (and later IBKR) implement.

A strategy runner only ever talks to this surface: submit and cancel orders, read open orders,
positions and balance, and hear about fills through callbacks. Submitting is idempotent on the
order's ``client_order_id``.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from qlm_kernel.errors import ExecutionError
from qlm_kernel.execution.types import Fill, Order, Position

log = logging.getLogger("qlm_kernel.execution")

def unknown_order(client_order_id: str) -> ExecutionError:
    """The NOT_FOUND error every handler raises for a client id it does not know."""
    return ExecutionError(f"no order with client id {client_order_id!r}", hint="see open_orders()",
                          code="NOT_FOUND", client_order_id=client_order_id)


FillCallback = Callable[[Fill, Order], Any]
OrderCallback = Callable[[Order], Any]


class ExecutionHandler(ABC):
    """Abstract broker/exchange connection: orders in, fills out.

    Subclasses implement `submit`, `cancel`, `get_order`, `open_orders`, `positions` and `balance`,
    and call `_emit_fill` for every execution so registered callbacks run (in registration order,
    on the thread that observed the fill; a failing callback is logged and never breaks the handler).
    """

    name: str = "handler"

    def __init__(self) -> None:
        self._callbacks: list[FillCallback] = []
        self._order_callbacks: list[OrderCallback] = []
        self._cb_lock = threading.Lock()

    @abstractmethod
    def submit(self, order: Order) -> Order:
        """Place ``order``; returns it with its state. Same client_order_id again = the known order.

        Raises `ExecutionError` when the order is refused (INSUFFICIENT_CASH, SIZE_LIMIT,
        INVALID_ORDER, EXCHANGE_*).
        """

    @abstractmethod
    def cancel(self, client_order_id: str) -> Order:
        """Cancel a working order; returns it (a finished order is returned unchanged)."""

    @abstractmethod
    def get_order(self, client_order_id: str) -> Order | None:
        """The order with this client id, or None if the handler never saw it."""

    @abstractmethod
    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders that can still fill, optionally for one symbol."""

    @abstractmethod
    def positions(self) -> dict[str, Position]:
        """Non-zero positions by symbol."""

    @abstractmethod
    def balance(self) -> dict[str, float]:
        """Cash: at least ``{"cash": free quote currency}``; adapters add per-currency totals."""

    def position(self, symbol: str) -> float:
        """Signed units held in ``symbol`` (0.0 when flat)."""
        pos = self.positions().get(symbol)
        return 0.0 if pos is None else pos.size

    def on_fill(self, callback: FillCallback) -> Callable[[], None]:
        """Call ``callback(fill, order)`` on every fill; returns a function that unregisters it."""
        with self._cb_lock:
            self._callbacks.append(callback)

        def remove() -> None:
            with self._cb_lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return remove

    def on_order_update(self, callback: OrderCallback) -> Callable[[], None]:
        """Call ``callback(order)`` when an order is accepted, rejected or cancelled after submit."""
        with self._cb_lock:
            self._order_callbacks.append(callback)

        def remove() -> None:
            with self._cb_lock:
                if callback in self._order_callbacks:
                    self._order_callbacks.remove(callback)

        return remove

    def _emit_order(self, order: Order) -> None:
        with self._cb_lock:
            callbacks = list(self._order_callbacks)
        for cb in callbacks:
            try:
                cb(order)
            except Exception:  # a broken listener must not break the handler
                log.exception("order callback %r failed", cb)

    def _emit_fill(self, fill: Fill, order: Order) -> None:
        with self._cb_lock:
            callbacks = list(self._callbacks)
        for cb in callbacks:
            try:
                cb(fill, order)
            except Exception:  # a broken listener must not lose the fill for the others
                log.exception("fill callback %r failed", cb)

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release connections (no-op by default)."""
