"""Small hand-written OHLCV frames and signal flags for the engine's semantics tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def frame(close, open_=None, high=None, low=None, freq: str = "1h") -> pd.DataFrame:
    """Bars from closes; open defaults to the close, high/low to the bar's open-close range."""
    close = np.asarray(close, dtype=float)
    open_ = close.copy() if open_ is None else np.asarray(open_, dtype=float)
    high = np.maximum(open_, close) if high is None else np.asarray(high, dtype=float)
    low = np.minimum(open_, close) if low is None else np.asarray(low, dtype=float)
    index = pd.date_range("2024-01-01", periods=len(close), freq=freq, tz="UTC", name="time")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": np.ones(len(close))}, index=index
    )


def flags(n: int, *bars: int) -> np.ndarray:
    """A boolean array of length ``n``, True at ``bars``."""
    out = np.zeros(n, dtype=bool)
    out[list(bars)] = True
    return out
