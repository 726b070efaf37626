"""A content hash of an OHLCV frame that is stable across files, formats and re-imports.

``sha256("qlm-ohlcv-v1" | row count | index as int64 UTC ns | open | high | low | close | volume)``, all
little-endian, with -0.0 folded into 0.0 and every NaN into one bit pattern. Attributes, column order in
the source and the file format do not matter; any change to a timestamp or value does.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from qlm_kernel.data.schema import OHLCV_COLUMNS
from qlm_kernel.errors import DataError

_TAG = b"qlm-ohlcv-v1\0"


def _index_ns(df: pd.DataFrame) -> np.ndarray:
    index = df.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError("fingerprint needs a DatetimeIndex", hint="load the data with load_ohlcv or "
                        "validate_ohlcv first", code="DATA_FORMAT", column="time", value=type(index).__name__)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return np.ascontiguousarray(index.as_unit("ns").asi8, dtype="<i8")


def fingerprint_arrays(time_ns: np.ndarray, columns: list[np.ndarray]) -> str:
    """The fingerprint of int64 UTC ns times and the five float columns (in OHLCV order)."""
    h = hashlib.sha256(_TAG)
    h.update(np.int64(len(time_ns)).astype("<i8").tobytes())
    h.update(np.ascontiguousarray(time_ns, dtype="<i8"))
    for col in columns:
        x = np.asarray(col, dtype=np.float64) + 0.0  # fresh array: -0.0 -> 0.0
        x[np.isnan(x)] = np.nan
        h.update(np.ascontiguousarray(x, dtype="<f8"))
    return h.hexdigest()


def fingerprint_frame(df: pd.DataFrame) -> str:
    """sha256 hex digest of the frame's timestamps and its open/high/low/close/volume values."""
    missing = [c for c in OHLCV_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"fingerprint needs the columns {list(OHLCV_COLUMNS)}; missing {missing}",
                        hint="load the data with load_ohlcv or validate_ohlcv first", code="DATA_FORMAT",
                        column=missing[0], value=None)
    return fingerprint_arrays(_index_ns(df), [df[c].to_numpy() for c in OHLCV_COLUMNS])
