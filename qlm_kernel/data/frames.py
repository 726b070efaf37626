"""Bring an in-memory pandas DataFrame (any column case, time as index or column) into the raw arrays.

Used by ``validate_ohlcv`` (user frames, backtesting.py-style ``Open/High/...`` frames) and by the
``DataManager`` when registering frames. Rows are reported 1-based by position.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from qlm_kernel.data.locate import TableLocator, error_at
from qlm_kernel.data.schema import OHLCV_COLUMNS, new_block, normalize_header, resolve_columns
from qlm_kernel.data.timeparse import epoch_to_ns, parse_time_strings
from qlm_kernel.data.validate import RawOHLCV
from qlm_kernel.errors import DataError


def _time_ns(values: pd.Index | pd.Series, loc: TableLocator) -> tuple[np.ndarray, str]:
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        stamps = pd.DatetimeIndex(values)
        if stamps.hasnans:
            pos = int(np.flatnonzero(stamps.isna())[0])
            raise error_at(loc, pos, "time", "missing timestamp (NaT)", hint="drop or fill rows without a "
                           "timestamp", code="DATA_BAD_TIME", value="NaT")
        stamps = stamps.tz_convert("UTC") if stamps.tz is not None else stamps.tz_localize("UTC")
        return stamps.as_unit("ns").asi8.copy(), "timestamp"
    if pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        arr = np.asarray(values)
        return epoch_to_ns(arr.astype(np.int64), loc)
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        try:
            text = pa.array(np.asarray(values, dtype=object), type=pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            raise error_at(loc, 0, "time", f"time values of type {dtype} are neither timestamps nor text",
                           hint="use a DatetimeIndex or ISO-8601 text", code="DATA_BAD_TIME",
                           value=str(dtype)) from None
        return parse_time_strings(text, loc)
    raise error_at(loc, 0, "time", f"time has unsupported dtype {dtype}", hint="use a DatetimeIndex, "
                   "ISO-8601 text or epoch integers", code="DATA_BAD_TIME", value=str(dtype))


def _floats(series: pd.Series, field: str, loc: TableLocator) -> np.ndarray:
    dtype = series.dtype
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    coerced = pd.to_numeric(series, errors="coerce")
    bad = coerced.isna().to_numpy() & series.notna().to_numpy()
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise error_at(loc, pos, field, "unparsable number", hint="convert the column to float64 first",
                       code="DATA_BAD_NUMBER", value=str(series.iloc[pos]))
    return coerced.to_numpy(dtype=np.float64, na_value=np.nan)


def frame_to_raw(df: pd.DataFrame, *, source: str = "<DataFrame>",
                 time_column: str | None = None) -> RawOHLCV:
    """Map a DataFrame's columns/index onto the canonical arrays (no validation yet)."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}",
                        hint="pass a DataFrame with a DatetimeIndex and open/high/low/close[/volume] columns",
                        code="DATA_FORMAT", file=source, value=type(df).__name__)
    headers = [str(c) for c in df.columns]
    use_index = time_column is None and (
        isinstance(df.index, pd.DatetimeIndex)
        or (df.index.name is not None and normalize_header(df.index.name) in ("time", "date", "datetime",
                                                                               "timestamp"))
    )
    index_label = str(df.index.name) if df.index.name is not None else "index"
    listed = [*headers, index_label] if use_index else headers
    cols = resolve_columns(listed, file=source, time_column=time_column,
                           fallback_time=len(headers) if use_index else None)
    if use_index and cols.index["time"] != len(headers):  # an explicit time column beats a plain index
        use_index = False
    if len(df) == 0:
        raise DataError(f"{source}: the DataFrame has no rows", hint="pass at least one row of data",
                        code="DATA_EMPTY", file=source, row=1, value="")
    loc = TableLocator(source, cols)
    time_values = df.index if use_index else df.iloc[:, cols.index["time"]]
    time_ns, time_format = _time_ns(time_values, loc)
    block = new_block(len(df))
    for j, f in enumerate(OHLCV_COLUMNS):
        if f in cols.index:
            block[j] = _floats(df.iloc[:, cols.index[f]], f, loc)
    volume_missing = "volume" not in cols.index or bool(np.isnan(block[4]).all())
    if volume_missing:
        block[4] = 0.0
    attrs = {"time_format": time_format, "close_column": cols.name("close"),
             "ignored_columns": [h for i, h in enumerate(headers) if i not in cols.index.values()]}
    return RawOHLCV(np.ascontiguousarray(time_ns, dtype=np.int64), block, loc,
                    volume_missing=volume_missing, attrs=attrs)
