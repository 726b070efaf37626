"""``load_ohlcv`` and ``validate_ohlcv``: any supported source -> the canonical, validated OHLCV frame.

Every failure is a ``DataError`` (file, row/line, column, value, hint), except a refused memory check,
which is ``QLMSystemError(code="MEMORY_LIMIT")``. Nothing is half-loaded: the frame is only built after
every check passed.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Any

import pandas as pd

from qlm_kernel.data.csvio import read_csv_bytes
from qlm_kernel.data.frames import frame_to_raw
from qlm_kernel.data.memory import check_memory, estimate_csv_bytes
from qlm_kernel.data.parquetio import read_parquet_file
from qlm_kernel.data.schema import build_frame
from qlm_kernel.data.validate import RawOHLCV, check_time_order, check_values
from qlm_kernel.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
FORMATS = ("csv", "parquet")


def finish(raw: RawOHLCV, *, repair: bool, attrs: dict[str, Any]) -> pd.DataFrame:
    """Validate raw arrays (repairing order/duplicates only if asked) and build the canonical frame."""
    raw = check_time_order(raw, repair=repair)
    check_values(raw)
    meta = {**attrs, **raw.attrs, "volume_missing": raw.volume_missing, "repairs": raw.repairs}
    return build_frame(raw.time_ns, raw.block, meta)


def _detect_format(path: Path, head: bytes, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise DataError(f"unknown format {fmt!r}", hint=f"use one of {list(FORMATS)} or leave "
                            "format=None to detect it", code="DATA_FORMAT", file=str(path),
                            value=fmt)
        return fmt
    if path.suffix.lower() in PARQUET_SUFFIXES or head[:4] == b"PAR1":
        return "parquet"
    return "csv"


def _read_csv_data(file: str, path: Path, head: bytes) -> bytes:
    """The CSV bytes (gunzipped when gzip-compressed), after checking they fit in memory."""
    size = path.stat().st_size
    if head[:2] == b"\x1f\x8b":
        with open(path, "rb") as fh:
            fh.seek(max(size - 4, 0))
            isize = int.from_bytes(fh.read(4), "little")  # uncompressed size mod 2**32 (gzip trailer)
        try:
            sample = zlib.decompressobj(wbits=31).decompress(head)
        except zlib.error:
            sample = b""
        check_memory(size + estimate_csv_bytes(max(isize, len(sample)), sample or head),
                     what=f"loading {file}")
        try:
            return gzip.decompress(path.read_bytes())
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{file}: damaged gzip data: {exc}", hint="re-download the file or decompress it "
                            "by hand to see what is wrong", code="DATA_ENCODING", file=file) from None
    check_memory(estimate_csv_bytes(size, head), what=f"loading {file}")
    return path.read_bytes()


def load_ohlcv(
    path: str | os.PathLike[str],
    *,
    repair: bool = False,
    format: str | None = None,
    delimiter: str | None = None,
    time_column: str | None = None,
) -> pd.DataFrame:
    """Load a CSV (optionally .gz) or Parquet file as the validated canonical OHLCV frame.

    Result: ``DatetimeIndex`` "time" (``datetime64[ns, UTC]``; text without a zone is taken as UTC), float64
    columns ``open, high, low, close, volume`` in one C-contiguous block. Missing volume becomes 0.0 with
    ``df.attrs["volume_missing"] = True``. ``repair=True`` sorts by time and drops duplicate timestamps
    (keeping the last) and lists what it did in ``df.attrs["repairs"]``; otherwise those are errors.
    ``format`` forces "csv"/"parquet"; ``delimiter`` overrides the sniffed one; ``time_column`` names the
    time column when it has an unusual header. Errors name file, ``line N`` (CSV, header = line 1) or
    ``row N`` (Parquet, 1-based data row), the column and the value. Memory is checked before reading.
    """
    p = Path(os.fspath(path)).expanduser()
    file = str(path)
    if not p.exists():
        raise DataError(f"{file}: no such file", hint="check the path (relative paths are resolved from "
                        f"{os.getcwd()})", code="NOT_FOUND", file=file)
    if not p.is_file():
        raise DataError(f"{file}: not a file", hint="pass the path of one CSV or Parquet file",
                        code="NOT_FOUND", file=file)
    try:
        with open(p, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError as exc:
        raise DataError(f"{file}: cannot read the file: {exc}", hint="check the file permissions",
                        code="NOT_FOUND", file=file) from None
    fmt = _detect_format(p, head, format)
    if fmt == "parquet":
        raw = read_parquet_file(file, p, time_column=time_column)
    else:
        data = _read_csv_data(file, p, head)
        raw = read_csv_bytes(file, data, delimiter=delimiter, time_column=time_column)
    return finish(raw, repair=repair, attrs={"source": file, "format": fmt})


def validate_ohlcv(
    df: pd.DataFrame,
    *,
    repair: bool = False,
    source: str | None = None,
    time_column: str | None = None,
) -> pd.DataFrame:
    """Check an in-memory frame by the same rules as ``load_ohlcv`` and return a new canonical frame.

    Accepts any header case/alias (e.g. backtesting.py's ``Open, High, ...``) and time as a DatetimeIndex
    or a column; naive times are UTC. Errors report ``row N`` = 1-based position. ``df.attrs`` are kept.
    """
    label = source or str(getattr(df, "attrs", {}).get("source", "<DataFrame>"))
    raw = frame_to_raw(df, source=label, time_column=time_column)
    attrs = {**df.attrs, "source": label}
    attrs.pop("repairs", None)
    return finish(raw, repair=repair, attrs=attrs)
