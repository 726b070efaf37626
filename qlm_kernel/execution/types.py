"""Orders, fills and positions: the plain records every execution handler speaks.

An `Order` says what to trade and how to size it; the handler fills it (possibly in parts) and
reports each `Fill`. Sizes are positive units; ``side`` gives the direction. Client order ids are
the idempotency key: submitting an order whose ``client_order_id`` the handler already knows
returns the known order instead of placing a second one.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from qlm_kernel.errors import ExecutionError

SIDES = ("buy", "sell")
ORDER_TYPES = ("market",)
OPEN_STATUSES = ("pending", "open", "partially_filled")
FINAL_STATUSES = ("filled", "cancelled", "rejected")
ORDER_STATUSES = OPEN_STATUSES + FINAL_STATUSES


def new_client_order_id(prefix: str = "qlm") -> str:
    """A fresh random client order id (prefix + 16 hex digits)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@dataclass
class Order:
    """One order: what to trade, how to size it, and (as the handler fills it) its state.

    Sizing, exactly one of: ``size`` (units), ``value`` (cash amount; units = value / price at
    the fill), ``cash_fraction`` (fraction of the cash available at the fill, fees included:
    units = (fraction * cash - fixed_fees) / (1 + fees) / fill price) or ``close=True`` (the whole
    position in ``symbol`` at the fill). ``cap_to_cash`` shrinks units/value orders to what cash
    affords at the fill instead of rejecting them (the backtest engine's rule); ``integer`` floors
    units. ``sl_stop``/``tp_stop``/``tsl_stop`` attach protective exits to the position the order
    opens (fractions of the unslipped fill price; paper handler only). ``reason`` and
    ``signal_bar`` are the strategy's bookkeeping ("signal", "reversal", "end", ...).
    """

    symbol: str
    side: str
    size: float | None = None
    value: float | None = None
    cash_fraction: float | None = None
    close: bool = False
    type: str = "market"
    client_order_id: str = field(default_factory=new_client_order_id)
    cap_to_cash: bool = False
    integer: bool = False
    sl_stop: float | None = None
    tp_stop: float | None = None
    tsl_stop: float | None = None
    reason: str = "signal"
    signal_bar: int | None = None
    # state, filled in by the handler
    status: str = "pending"
    filled: float = 0.0
    avg_price: float = math.nan
    fees: float = 0.0
    submitted_at: float | None = None
    arrival_at: float | None = None
    exchange_id: str | None = None
    error: dict[str, Any] | None = None
    target_size: float | None = None  # units fixed at the first fill (sizing by value / cash)

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise _bad(f"side must be 'buy' or 'sell', got {self.side!r}", "side", self.side)
        if self.type not in ORDER_TYPES:
            raise _bad(
                f"order type {self.type!r} is not supported",
                "type",
                self.type,
                hint=f"use one of {', '.join(ORDER_TYPES)}",
            )
        if not isinstance(self.symbol, str) or not self.symbol:
            raise _bad("symbol must be a non-empty string, e.g. 'BTC/USDT'", "symbol", self.symbol)
        given = [n for n in ("size", "value", "cash_fraction") if getattr(self, n) is not None]
        if len(given) + bool(self.close) != 1:
            raise _bad(
                "give exactly one of size, value, cash_fraction or close=True",
                "size",
                given,
                hint="e.g. Order('BTC/USDT', 'buy', size=0.5) or Order(..., cash_fraction=1.0)",
            )
        for name in given:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise _bad(f"{name} must be a positive number, got {v!r}", name, v)
        if self.cash_fraction is not None and self.cash_fraction > 1.0:
            raise _bad(
                f"cash_fraction={self.cash_fraction} is over 1 (100% of cash)",
                "cash_fraction",
                self.cash_fraction,
                hint="give a fraction in (0, 1]",
            )
        if not isinstance(self.client_order_id, str) or not 0 < len(self.client_order_id) <= 64:
            raise _bad(
                "client_order_id must be a string of 1-64 characters", "client_order_id", self.client_order_id
            )

    @property
    def is_open(self) -> bool:
        """True while the order can still fill."""
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> float | None:
        """Units still to fill, once known (None before the first fill of a value/cash order)."""
        if self.target_size is None:
            return None
        return max(self.target_size - self.filled, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Order:
        """Rebuild an order from `to_dict()` output (restores its state too)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class Fill:
    """One execution: ``size`` units (positive) of ``side`` at ``price`` (after slippage) paying ``fee``.

    ``ref_price`` is the market price before slippage, ``time`` the clock time of the fill (epoch
    seconds), ``bar`` the bar index it happened on (paper/replay), ``reason`` the order's reason
    or the protective exit that fired (stop_loss, take_profit, trailing_stop).
    """

    fill_id: str
    client_order_id: str
    symbol: str
    side: str
    size: float
    price: float
    fee: float
    time: float
    ref_price: float
    bar: int = -1
    reason: str = "signal"
    signal_bar: int | None = None

    @property
    def signed_size(self) -> float:
        """+size for a buy, -size for a sell."""
        return self.size if self.side == "buy" else -self.size

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fill:
        """Rebuild a fill from `to_dict()` output."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class Position:
    """Signed units held in one symbol (> 0 long, < 0 short) and their average entry price."""

    symbol: str
    size: float = 0.0
    avg_price: float = math.nan
    realized_pnl: float = 0.0

    def unrealized_pnl(self, price: float) -> float:
        """Mark-to-market profit of the open units at ``price`` (fees excluded)."""
        return 0.0 if self.size == 0.0 else (price - self.avg_price) * self.size

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return asdict(self)


def _bad(message: str, field_name: str, value: Any, *, hint: str | None = None) -> ExecutionError:
    return ExecutionError(
        message,
        hint=hint or "fix the order's arguments",
        code="INVALID_ORDER",
        field=field_name,
        value=repr(value)[:200],
    )
