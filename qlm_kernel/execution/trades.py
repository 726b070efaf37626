"""Round trips from a fill ledger: the same trade table `BacktestResult.trades` has.

A trade opens when the position leaves zero and closes when it returns to zero (a fill that flips
the position closes one trade and opens the next, its size and fee split pro rata). Entry and exit
prices are volume-weighted over the trade's fills; times are the timestamps of the bars the first
entry fill and the last exit fill happened on. pnl and return follow the engine's formulas, so a
replay with the engine's fills reproduces the engine's trades bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.engine.result import DIRECTION_DTYPE, EXIT_REASON_DTYPE, STATUS_DTYPE, TRADE_COLUMNS
from qlm_kernel.execution.types import Fill


class _Leg:
    __slots__ = ("bar", "fees", "last_bar", "notional", "price", "reason", "signal_bar", "units")

    def __init__(self) -> None:
        self.units = 0.0
        self.notional = 0.0
        self.price = np.nan
        self.fees = 0.0
        self.bar = -1
        self.reason = "signal"
        self.signal_bar: int | None = None
        self.last_bar = -1

    def add(
        self, units: float, price: float, fee: float, bar: int, reason: str, signal_bar: int | None
    ) -> None:
        if self.units == 0.0:
            self.price = price
            self.bar = bar
            self.signal_bar = signal_bar
            self.notional = units * price
            self.units = units
        else:
            self.notional += units * price
            self.units += units
            self.price = self.notional / self.units
        self.fees += fee
        self.reason = reason
        self.last_bar = bar


def build_trades(fills: Sequence[Fill], index: pd.DatetimeIndex, last_close: float) -> pd.DataFrame:
    """The trade table of ``fills`` (in order) over bars ``index``; an open trade is marked at the close."""
    records: list[dict[str, Any]] = []
    pos = 0.0
    entry: _Leg | None = None
    exit_: _Leg | None = None
    size = 0.0  # signed units opened by the current trade
    for f in fills:
        signed = f.signed_size
        remaining = signed
        while remaining != 0.0:
            share = f.fee if abs(remaining) == f.size else f.fee * abs(remaining) / f.size
            if pos == 0.0:
                entry, exit_ = _Leg(), _Leg()
                entry.add(abs(remaining), f.price, share, f.bar, f.reason, f.signal_bar)
                pos = size = remaining
                remaining = 0.0
            elif (pos > 0) == (remaining > 0):
                entry.add(abs(remaining), f.price, share, f.bar, f.reason, f.signal_bar)  # type: ignore[union-attr]
                pos += remaining
                size += remaining
                remaining = 0.0
            else:
                part = min(abs(remaining), abs(pos))
                fee = f.fee if part == f.size else f.fee * part / f.size
                exit_.add(part, f.price, fee, f.bar, f.reason, f.signal_bar)  # type: ignore[union-attr]
                step = part if remaining > 0 else -part
                pos += step
                remaining -= step
                if abs(pos) <= 1e-12 * abs(size):
                    pos = 0.0
                    records.append(_record(entry, exit_, size, closed=True))  # type: ignore[arg-type]
                    entry = exit_ = None
    if pos != 0.0 and entry is not None and exit_ is not None:
        records.append(_record(entry, exit_, size, closed=False, mark=last_close))
    return trades_frame(records, index)


def _record(entry: _Leg, exit_: _Leg, size: float, *, closed: bool, mark: float = np.nan) -> dict[str, Any]:
    exit_price = exit_.price if closed else mark
    exit_fees = exit_.fees if closed else 0.0
    pnl = (exit_price - entry.price) * size - entry.fees  # the engine's order of operations
    pnl -= exit_fees
    return {
        "entry_bar": entry.bar,
        "exit_bar": exit_.last_bar if closed else -1,
        "direction": "long" if size > 0 else "short",
        "size": abs(size),
        "entry_price": entry.price,
        "exit_price": exit_price,
        "pnl": pnl,
        "return": pnl / (abs(size) * entry.price),
        "fees": entry.fees + exit_fees,
        "exit_reason": exit_.reason if closed else "open",
        "status": "closed" if closed else "open",
        "signal_bar": entry.signal_bar,
        "exit_signal_bar": exit_.signal_bar if closed else None,
    }


def trades_frame(records: list[dict[str, Any]], index: pd.DatetimeIndex) -> pd.DataFrame:
    """Trade records as a DataFrame with `BacktestResult.trades`' columns and dtypes."""
    entry_bar = np.array([r["entry_bar"] for r in records], dtype=np.int64)
    exit_bar = np.array([r["exit_bar"] for r in records], dtype=np.int64)
    frame = pd.DataFrame(
        {
            "entry_time": index.take(entry_bar),
            "exit_time": index.take(exit_bar, allow_fill=True, fill_value=pd.NaT),
            "entry_bar": entry_bar,
            "exit_bar": exit_bar,
            "direction": pd.Categorical([r["direction"] for r in records], dtype=DIRECTION_DTYPE),
            "size": np.array([r["size"] for r in records], dtype=np.float64),
            "entry_price": np.array([r["entry_price"] for r in records], dtype=np.float64),
            "exit_price": np.array([r["exit_price"] for r in records], dtype=np.float64),
            "pnl": np.array([r["pnl"] for r in records], dtype=np.float64),
            "return": np.array([r["return"] for r in records], dtype=np.float64),
            "fees": np.array([r["fees"] for r in records], dtype=np.float64),
            "exit_reason": pd.Categorical([r["exit_reason"] for r in records], dtype=EXIT_REASON_DTYPE),
            "status": pd.Categorical([r["status"] for r in records], dtype=STATUS_DTYPE),
        },
        columns=list(TRADE_COLUMNS),
    )
    frame.attrs["signal_bars"] = [r["signal_bar"] for r in records]
    return frame
