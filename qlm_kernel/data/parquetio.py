"""Read OHLCV from Parquet (e.g. written by pandas) with the same column rules as CSV.

The time may be a regular column or the pandas index (named or ``__index_level_0__``), any timestamp unit,
any zone or naive (= UTC), a date, epoch integers or ISO text. Prices may be any numeric type (cast to
float64 exactly) or text that parses as numbers. Rows are reported 1-based (``row 1`` = first data row).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from qlm_kernel.data.locate import TableLocator, error_at, first_failing
from qlm_kernel.data.memory import check_memory, estimate_rows_bytes
from qlm_kernel.data.schema import OHLCV_COLUMNS, ColumnMap, new_block, resolve_columns
from qlm_kernel.data.timeparse import arrow_time_to_ns
from qlm_kernel.data.validate import RawOHLCV
from qlm_kernel.errors import DataError

_CORRUPT_HINT = "the file is not a readable Parquet file (damaged, truncated or another format); re-export it"


def _open(file: str, path: Any) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{file}: cannot read as Parquet: {exc}", hint=_CORRUPT_HINT, code="DATA_FORMAT",
                        file=file) from None


def _index_field(schema: pa.Schema) -> str | None:
    """The Arrow field that stores the pandas index (when it is a single stored column)."""
    meta = schema.pandas_metadata or {}
    index_cols = [c for c in meta.get("index_columns", []) if isinstance(c, str)]
    return index_cols[0] if len(index_cols) == 1 else None


def _to_float(col: pa.ChunkedArray, field: str, loc: TableLocator) -> pa.ChunkedArray:
    typ = col.type
    if pa.types.is_floating(typ) or pa.types.is_integer(typ) or pa.types.is_decimal(typ):
        try:
            return pc.cast(col, pa.float64())
        except pa.ArrowInvalid:
            pos = first_failing(col, lambda a: pc.cast(a, pa.float64())) or 0
            raise error_at(loc, pos, field, f"value of type {typ} cannot be represented as float64",
                           hint="store prices and volume as float64", code="DATA_BAD_NUMBER",
                           value=str(col[pos])) from None
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        text = pc.utf8_trim_whitespace(col)
        try:
            return pc.cast(text, pa.float64())
        except pa.ArrowInvalid:
            pos = first_failing(text, lambda a: pc.cast(a, pa.float64())) or 0
            raise error_at(loc, pos, field, "unparsable number", hint="store prices and volume as float64 "
                           "numbers, or as text with '.' decimals and no thousands separators",
                           code="DATA_BAD_NUMBER", value=text[pos].as_py()) from None
    raise error_at(loc, 0, field, f"column has unsupported type {typ}", hint="store prices and volume as "
                   "float64", code="DATA_BAD_NUMBER", value=str(typ))


def read_parquet_file(file: str, path: Any, *, time_column: str | None = None) -> RawOHLCV:
    """Parse a Parquet file into unvalidated arrays (memory checked from the row count first)."""
    pf = _open(file, path)
    rows = pf.metadata.num_rows
    check_memory(estimate_rows_bytes(rows), what=f"loading {file} ({rows} rows)")
    schema = pf.schema_arrow
    names = list(schema.names)
    index_name = _index_field(schema)
    display = ["index" if n.startswith("__index_level_") else n for n in names]
    fallback = names.index(index_name) if index_name in names else None
    if fallback is None:
        stamps = [i for i, f in enumerate(schema) if pa.types.is_timestamp(f.type)]
        fallback = stamps[0] if len(stamps) == 1 else None
    cols: ColumnMap = resolve_columns(display, file=file, time_column=time_column, fallback_time=fallback)
    wanted = [f for f in ("time", *OHLCV_COLUMNS) if f in cols.index]
    try:
        table = pf.read(columns=[names[cols.index[f]] for f in wanted], use_pandas_metadata=False)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{file}: cannot read Parquet data: {exc}", hint=_CORRUPT_HINT, code="DATA_FORMAT",
                        file=file) from None
    if table.num_rows == 0:
        raise DataError(f"{file}: the Parquet file has no rows", hint="write at least one row of data",
                        code="DATA_EMPTY", file=file, row=1, value="")
    loc = TableLocator(file, cols)
    time_ns, time_format = arrow_time_to_ns(table.column(0), loc)
    n = table.num_rows
    block = new_block(n)
    volume_missing = True
    for j, f in enumerate(OHLCV_COLUMNS):
        if f not in cols.index:
            continue
        col = table.column(wanted.index(f))
        if f == "volume" and col.null_count == n:
            continue
        block[j] = _to_float(col, f, loc).to_numpy()
        if f == "volume":
            volume_missing = False
    if volume_missing:
        block[4] = 0.0
    attrs = {"time_format": time_format, "close_column": cols.name("close"), "ignored_columns": cols.ignored}
    return RawOHLCV(np.ascontiguousarray(time_ns), block, loc, volume_missing=volume_missing, attrs=attrs)
