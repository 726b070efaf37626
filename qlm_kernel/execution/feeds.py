"""Bar feeds for the paper runner: a DataFrame replayed at a pace, or anything yielding `Bar`s.

A feed is an iterable of closed bars in time order. ``DataFrameFeed`` replays a frame (at full speed
or with a pause between bars, for a paper session that looks live); the CCXT adapter provides a
polling OHLCV feed of an exchange (`qlm_kernel.execution.ccxt_handler.CCXTFeed`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import NamedTuple

import pandas as pd

from qlm_kernel.strategy.run import ohlcv_frame


class Bar(NamedTuple):
    """One closed bar: its timestamp and OHLCV values."""

    time: pd.Timestamp
    open: float
    high: float
    low: float
    close: float
    volume: float


class DataFrameFeed:
    """Replay ``frame`` bar by bar; ``pace`` seconds between bars (0 = full speed).

    ``stop`` (a `threading.Event`) ends the replay early; ``live = False`` tells the runner the
    clock is simulated (bar time), so replays are deterministic.
    """

    live = False

    def __init__(
        self, frame: pd.DataFrame, *, pace: float = 0.0, stop: threading.Event | None = None
    ) -> None:
        self.frame = ohlcv_frame(frame)
        self.pace = float(pace)
        self.stop = stop
        self.fast_until = 0  # bars before this come without pause (a resumed session's history)

    def __len__(self) -> int:
        return len(self.frame)

    def __iter__(self) -> Iterator[Bar]:
        f = self.frame
        cols = [f[c].to_numpy() for c in ("open", "high", "low", "close")]
        vol = f["volume"].to_numpy() if "volume" in f.columns else None
        index = f.index
        for i in range(len(f)):
            if self.stop is not None and self.stop.is_set():
                return
            if self.pace > 0 and i > self.fast_until:
                if self.stop is not None:
                    if self.stop.wait(self.pace):
                        return
                else:
                    time.sleep(self.pace)
            yield Bar(
                index[i],
                float(cols[0][i]),
                float(cols[1][i]),
                float(cols[2][i]),
                float(cols[3][i]),
                float(vol[i]) if vol is not None else float("nan"),
            )
