"""Signals for a runner, one bar at a time: precomputed (replay) or recomputed on the data seen so far.

`IncrementalSignals` is lookahead-free by construction: at bar t it calls the strategy on bars
0..t only (optionally the last ``window`` bars) and reads the last row. That costs O(t) per bar,
fine at live speeds. `FullSignals` computes once on the whole frame (fast replay); `paper_replay`
pairs it with `qlm.sanity.lookahead` so a strategy that peeks is refused instead of replayed.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from qlm_kernel.engine.settings import BacktestSettings
from qlm_kernel.strategy.run import signal_arrays

COLUMNS = ("open", "high", "low", "close", "volume")


class BarSignals(NamedTuple):
    """The strategy's decision inputs at one bar: four flags and the stop fractions (NaN = none)."""

    el: bool
    xl: bool
    es: bool
    xs: bool
    sl: float
    tp: float
    tsl: float


def _stop_value(a: np.ndarray, i: int) -> float:
    return float(a[0] if a.shape[0] == 1 else a[i])


class FullSignals:
    """Signals computed once on the whole frame (only for replays proved free of lookahead)."""

    def __init__(self, strat: Any, frame: pd.DataFrame, settings: BacktestSettings) -> None:
        self.arrays = signal_arrays(strat, frame, settings)

    def at(self, i: int, history: History) -> BarSignals:
        """The signals of bar ``i``."""
        el, xl, es, xs, sl, tp, tsl = self.arrays
        return BarSignals(
            bool(el[i]),
            bool(xl[i]),
            bool(es[i]),
            bool(xs[i]),
            _stop_value(sl, i),
            _stop_value(tp, i),
            _stop_value(tsl, i),
        )


class IncrementalSignals:
    """Signals recomputed at every bar on the bars seen so far (no lookahead by construction)."""

    def __init__(self, strat: Any, settings: BacktestSettings, window: int | None = None) -> None:
        self.strat = strat
        self.settings = settings
        self.window = window

    def at(self, i: int, history: History) -> BarSignals:
        """The signals of the newest bar in ``history``, from the history alone."""
        frame = history.frame(self.window)
        el, xl, es, xs, sl, tp, tsl = signal_arrays(self.strat, frame, self.settings)
        j = len(frame) - 1
        return BarSignals(
            bool(el[j]),
            bool(xl[j]),
            bool(es[j]),
            bool(xs[j]),
            _stop_value(sl, j),
            _stop_value(tp, j),
            _stop_value(tsl, j),
        )


class History:
    """The bars seen so far, in growing numpy buffers, viewable as an OHLCV DataFrame."""

    def __init__(self, capacity: int = 1024) -> None:
        self._values = np.empty((max(capacity, 16), len(COLUMNS)))
        self._times = np.empty(max(capacity, 16), dtype=np.int64)
        self.n = 0

    def append(self, time: pd.Timestamp, o: float, h: float, lo: float, c: float, v: float) -> None:
        """Add one bar (times must increase)."""
        if self.n == len(self._times):
            self._values = np.concatenate((self._values, np.empty_like(self._values)))
            self._times = np.concatenate((self._times, np.empty_like(self._times)))
        self._values[self.n] = (o, h, lo, c, v if v == v else 0.0)
        self._times[self.n] = time.value
        self.n += 1

    def frame(self, window: int | None = None) -> pd.DataFrame:
        """The last ``window`` bars (all when None) as a validated-shape OHLCV frame."""
        start = 0 if window is None else max(self.n - window, 0)
        index = pd.DatetimeIndex(
            self._times[start : self.n].astype("datetime64[ns]"), name="time"
        ).tz_localize("UTC")
        return pd.DataFrame(self._values[start : self.n].copy(), index=index, columns=list(COLUMNS))

    @property
    def index(self) -> pd.DatetimeIndex:
        """Timestamps of every bar seen."""
        return pd.DatetimeIndex(self._times[: self.n].astype("datetime64[ns]"), name="time").tz_localize(
            "UTC"
        )

    @property
    def last_close(self) -> float:
        """The newest close (NaN before any bar)."""
        return float(self._values[self.n - 1, 3]) if self.n else math.nan
