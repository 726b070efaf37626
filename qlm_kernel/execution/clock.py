"""Clocks for execution: a simulated clock that replays bar time (deterministic) and the wall clock.

Times are epoch seconds (float). The paper handler stamps orders with ``clock.now()`` and compares
arrival times (submit + latency) against the time of each new bar.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Anything with ``now() -> epoch seconds``."""

    def now(self) -> float: ...


class SimulatedClock:
    """A clock that only moves when the replay sets it (to each bar's timestamp): deterministic."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        """The simulated time."""
        return self._now

    def set(self, t: float) -> None:
        """Move to ``t`` (never backwards: a replay's bars are in time order)."""
        self._now = max(self._now, float(t))


class WallClock:
    """The real time (live feeds)."""

    def now(self) -> float:
        """``time.time()``."""
        return time.time()

    def set(self, t: float) -> None:
        """Ignored: the wall clock cannot be moved."""
