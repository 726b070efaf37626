"""``load_ohlcv`` and ``validate_ohlcv``: any supported source -> the canonical, validated OHLCV frame.

Every failure is a ``DataError`` (file, row/line, column, value, hint), except a refused memory check,
which is ``QLMSystemError(code="MEMORY_LIMIT")``, or ``"DECOMPRESSED_TOO_LARGE"`` for a gzip file that
inflates past the cap while it streams. Nothing is half-loaded: the frame is only built after every
check passed.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import pandas as pd

from qlm_kernel.data.csvio import read_csv_bytes
from qlm_kernel.data.frames import frame_to_raw
from qlm_kernel.data.memory import ENV_LIMIT, check_memory, estimate_csv_bytes, memory_budget, text_cap
from qlm_kernel.data.parquetio import read_parquet_file
from qlm_kernel.data.schema import build_frame
from qlm_kernel.data.validate import RawOHLCV, check_time_order, check_values
from qlm_kernel.errors import ConfigError, DataError, QLMSystemError

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
FORMATS = ("csv", "parquet")
GZIP_CHUNK = 1 << 20  # compressed bytes read at a time
GZIP_SAMPLE = 1 << 20  # decompressed bytes looked at to estimate bytes per line
GZIP_OUT = 4 << 20  # the most decompressed bytes one zlib call may produce


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


def _damaged_gzip(file: str, why: object) -> DataError:
    return DataError(f"{file}: damaged gzip data: {why}", hint="re-download the file or decompress it "
                     "by hand to see what is wrong", code="DATA_ENCODING", file=file)


def _too_large(file: str, cap: int, explicit: int | None, compressed: int,
               figures: dict[str, int | None]) -> QLMSystemError:
    if explicit is not None and explicit <= cap:
        where = f"max_decompressed_bytes={explicit}"
        hint = ("raise max_decompressed_bytes= (it can only lower the memory cap), or decompress the file "
                "and convert it to Parquet")
    else:
        where = f"the memory budget ({figures['budget']} bytes usable)"
        hint = (f"free memory (close other notebooks or kernels) or raise/unset {ENV_LIMIT} to raise the "
                "cap; a file that really is this large: decompress it and convert it to Parquet")
    return QLMSystemError(
        f"{file}: the gzip data decompresses to more than {cap} bytes, the cap from {where}; "
        f"stopped reading ({compressed} bytes compressed)",
        hint=hint, code="DECOMPRESSED_TOO_LARGE", file=file, cap_bytes=cap, compressed_bytes=compressed,
        max_decompressed_bytes=explicit, budget_bytes=figures["budget"], limit_bytes=figures["limit"],
    )


def _gunzip(file: str, path: Path, head: bytes, max_bytes: int | None) -> bytes:
    """Decompress a gzip file as a stream, refusing it once it inflates past the cap (ISIZE is not trusted).

    The cap is the most text the memory budget can load (`text_cap`), lowered by ``max_bytes`` when
    given. Concatenated members and zero padding between them are read like ``gzip.decompress`` does.
    """
    try:
        sample = zlib.decompressobj(wbits=31).decompress(head, GZIP_SAMPLE)
    except zlib.error:
        sample = b""
    figures = memory_budget()
    cap = text_cap(sample or head, int(figures["budget"] or 0))
    if max_bytes is not None:
        cap = min(cap, max(int(max_bytes), 0))
    pieces: list[bytes] = []
    total = 0
    inflate, started, buf = zlib.decompressobj(wbits=31), False, b""
    with open(path, "rb") as fh:
        while True:
            if not buf:
                buf = fh.read(GZIP_CHUNK)
                if not buf:
                    break
            if not started:  # between members: skip zero padding, as gzip.decompress does
                buf = buf.lstrip(b"\x00")
                if not buf:
                    continue
                started = True
            want = min(cap + 1 - total, GZIP_OUT)  # never more than one byte past the cap
            try:
                out = inflate.decompress(buf, want)
            except zlib.error as exc:
                raise _damaged_gzip(file, exc) from None
            total += len(out)
            if total > cap:
                raise _too_large(file, cap, max_bytes, fh.tell(), figures)
            pieces.append(out)
            if inflate.eof:  # the next member (or padding) starts in what is left
                buf, inflate = inflate.unused_data, zlib.decompressobj(wbits=31)
                started = False
            else:  # input left over when the output limit was reached (the trailer always is)
                buf = inflate.unconsumed_tail
    if started:
        raise _damaged_gzip(file, "the file ends before the end of the compressed stream")
    return b"".join(pieces)


def _read_csv_data(file: str, path: Path, head: bytes, max_decompressed_bytes: int | None = None) -> bytes:
    """The CSV bytes after checking they fit in memory (gzip: decompressed as a stream capped at the
    most text the memory budget can load, `text_cap`: that cap is the check, not a second one after
    the text is resident, which would count it twice)."""
    if head[:2] == b"\x1f\x8b":
        return _gunzip(file, path, head, max_decompressed_bytes)
    check_memory(estimate_csv_bytes(path.stat().st_size, head), what=f"loading {file}")
    return path.read_bytes()


def load_ohlcv(
    path: str | os.PathLike[str],
    *,
    repair: bool = False,
    format: str | None = None,
    delimiter: str | None = None,
    time_column: str | None = None,
    max_decompressed_bytes: int | None = None,
) -> pd.DataFrame:
    """Load a CSV (optionally .gz) or Parquet file as the validated canonical OHLCV frame.

    Result: ``DatetimeIndex`` "time" (``datetime64[ns, UTC]``; text without a zone is taken as UTC), float64
    columns ``open, high, low, close, volume`` in one C-contiguous block. Missing volume becomes 0.0 with
    ``df.attrs["volume_missing"] = True``. ``repair=True`` sorts by time and drops duplicate timestamps
    (keeping the last) and lists what it did in ``df.attrs["repairs"]``; otherwise those are errors.
    ``format`` forces "csv"/"parquet"; ``delimiter`` overrides the sniffed one; ``time_column`` names the
    time column when it has an unusual header. Errors name file, ``line N`` (CSV, header = line 1) or
    ``row N`` (Parquet, 1-based data row), the column and the value. Memory is checked before reading;
    gzip data is decompressed as a stream and refused (``QLMSystemError`` DECOMPRESSED_TOO_LARGE) once
    it passes what the memory budget can load, or ``max_decompressed_bytes`` if that is lower.
    """
    p = Path(os.fspath(path)).expanduser()
    file = str(path)
    if max_decompressed_bytes is not None and (
        isinstance(max_decompressed_bytes, bool) or not isinstance(max_decompressed_bytes, int)
        or max_decompressed_bytes < 1
    ):
        raise ConfigError(f"max_decompressed_bytes must be a positive number of bytes, not "
                          f"{max_decompressed_bytes!r}", hint="e.g. max_decompressed_bytes=2_000_000_000, "
                          "or None for the memory budget", code="BAD_OPTION",
                          setting="max_decompressed_bytes", value=repr(max_decompressed_bytes))
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
        data = _read_csv_data(file, p, head, max_decompressed_bytes)
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
