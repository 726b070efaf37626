"""Pre-trade risk limits: max position, max daily loss, max order rate. Refusals are `ExecutionError`s.

Checked by the runner before an order reaches the handler (any handler: paper or exchange):

- ``max_position``: |position after the order| in units may not exceed it. Orders sized by cash
  are estimated at the last close (their units are only known at the fill).
- ``max_daily_loss``: once equity has fallen this much cash below the day's starting equity (UTC
  days on the session clock), orders that open or add exposure are refused until the next day;
  closing orders always pass.
- ``max_orders_per_minute``: at most this many orders in any 60 s of session-clock time.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from qlm_kernel.errors import ConfigError, ExecutionError
from qlm_kernel.execution.types import Order

DAY = 86_400.0


@dataclass
class RiskLimits:
    """Limits a runner enforces before submitting; ``None`` disables a limit."""

    max_position: float | None = None
    max_daily_loss: float | None = None
    max_orders_per_minute: int | None = None
    _times: deque = field(default_factory=deque, repr=False, compare=False)
    _day: float | None = field(default=None, repr=False, compare=False)
    _day_start_equity: float = field(default=math.nan, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("max_position", "max_daily_loss", "max_orders_per_minute"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(
                    f"{name}={value!r} must be a positive number (or None for no limit)",
                    hint=f"e.g. {name}=10",
                    setting=name,
                    value=repr(value),
                )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RiskLimits:
        """Limits from a plain dict (unknown keys refused)."""
        data = dict(data or {})
        unknown = sorted(set(data) - {"max_position", "max_daily_loss", "max_orders_per_minute"})
        if unknown:
            raise ConfigError(
                f"unknown risk limit(s): {', '.join(unknown)}",
                hint="use max_position, max_daily_loss, max_orders_per_minute",
                fields=unknown,
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The limits (not the counters) as a dict."""
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def observe(self, now: float, equity: float) -> None:
        """Track the day's starting equity (call once per bar with the clock time and equity)."""
        day = math.floor(now / DAY)
        if self._day != day:
            self._day = day
            self._day_start_equity = equity

    def check(
        self, order: Order, *, now: float, position: float, equity: float, cash: float, price: float
    ) -> None:
        """Raise `ExecutionError` (RISK_*) if ``order`` would break a limit; record it otherwise."""
        signed_pos = position
        if order.close:
            after = 0.0
        else:
            units = order.size
            if units is None and order.value is not None:
                units = order.value / price
            elif units is None:
                units = (order.cash_fraction or 0.0) * cash / price
            after = signed_pos + (units if order.side == "buy" else -units)
        increases = abs(after) > abs(signed_pos) or (
            after != 0.0 and signed_pos != 0.0 and (after > 0) != (signed_pos > 0)
        )
        if self.max_position is not None and increases and abs(after) > self.max_position * (1 + 1e-12):
            raise ExecutionError(
                f"order {order.client_order_id!r} would hold {abs(after):.6g} units of {order.symbol}, over "
                f"max_position={self.max_position}",
                hint="trade a smaller size (size= / size_type=) or raise risk max_position",
                code="RISK_MAX_POSITION",
                client_order_id=order.client_order_id,
                position_after=after,
                limit=self.max_position,
            )
        if self.max_daily_loss is not None and increases:
            self.observe(now, equity)
            loss = self._day_start_equity - equity
            if loss >= self.max_daily_loss:
                raise ExecutionError(
                    f"order {order.client_order_id!r} refused: today's loss {loss:.2f} has reached "
                    f"max_daily_loss={self.max_daily_loss}; only closing orders pass until the next UTC day",
                    hint="wait for the next day, or raise risk max_daily_loss",
                    code="RISK_DAILY_LOSS",
                    client_order_id=order.client_order_id,
                    loss=loss,
                    limit=self.max_daily_loss,
                )
        if self.max_orders_per_minute is not None:
            while self._times and self._times[0] <= now - 60.0:
                self._times.popleft()
            if len(self._times) >= self.max_orders_per_minute:
                raise ExecutionError(
                    f"order {order.client_order_id!r} refused: {len(self._times)} orders in the last 60 s "
                    f"reach max_orders_per_minute={self.max_orders_per_minute}",
                    hint="slow the strategy down or raise risk max_orders_per_minute",
                    code="RISK_ORDER_RATE",
                    client_order_id=order.client_order_id,
                    limit=self.max_orders_per_minute,
                )
            self._times.append(now)
