"""Read a universe's members: several files, a dict of frames, or one long-format file with a symbol column.

Every member goes through the single-file validators (``load_ohlcv``/``validate_ohlcv``/``finish``), and a
``DataError`` gains ``symbol=`` (context and message) on top of the file, row/line, column and value it
already names. Long format: the file is read once, split by symbol, and each symbol's rows are validated
with a locator that still points at the original file's lines/rows. CSV: its bytes are read into memory
once and parsed twice (a first pass for the symbol column only, then the OHLCV columns by the single-file
CSV reader). Parquet: one open file, from which the schema, the symbol column and the OHLCV columns are
read (each column once).

Rules stated here:
- Symbols: 1-64 characters from ``A-Z a-z 0-9 _ . -``, not starting with '.', no '..', unique after
  case-folding (``btc`` and ``BTC`` clash: they would be one file on a case-insensitive disk).
- Time zones: members must agree. Times without a zone are taken as UTC (as for single files); a universe
  mixing such naive members with zoned ones (offsets, tz-aware index/Parquet timestamps) is refused, since
  the naive file is most likely local time. Epoch numbers are absolute and mix with either.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from qlm_kernel.data.csvio import _header_bounds, _parse_header, read_csv_bytes, sniff_delimiter
from qlm_kernel.data.loader import PARQUET_SUFFIXES, _read_csv_data, finish, load_ohlcv, validate_ohlcv
from qlm_kernel.data.locate import CsvLocator, Locator
from qlm_kernel.data.parquetio import _CORRUPT_HINT, _open, read_parquet_file
from qlm_kernel.data.schema import normalize_header
from qlm_kernel.data.validate import RawOHLCV, _iso
from qlm_kernel.errors import DataError, QLMError

SYMBOL_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
SYMBOL_ALIASES = ("symbol", "ticker", "asset", "instrument", "code", "pair", "market", "coin", "secid")
_NAIVE_FORMATS = ("iso8601", "yyyymmdd", "date")


def with_symbol(exc: QLMError, symbol: str) -> QLMError:
    """The same error with ``symbol`` in its message and context (code, hint, fixes, location kept)."""
    if exc.context.get("symbol") == symbol:
        return exc
    new = type(exc)(f"symbol {symbol!r}: {exc.message}", hint=exc.hint, code=exc.code,
                    context={**exc.context, "symbol": symbol}, fixes=exc.fixes or None)
    return new


def check_symbol(symbol: object) -> str:
    """A member symbol by the stated rule, or a DataError (with a cleaned suggestion)."""
    text = symbol if isinstance(symbol, str) else str(symbol)
    if not isinstance(symbol, str) or not SYMBOL_RE.fullmatch(text) or ".." in text:
        cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", text.strip()).lstrip(".").replace("..", ".")[:64] or "SYM"
        raise DataError(f"invalid symbol {text!r}", hint="symbols are 1-64 characters from A-Z a-z 0-9 _ . "
                        f"- (not starting with '.', no '/' or spaces), e.g. {cleaned!r}", code="DATA_SYMBOL",
                        value=text, symbol=text, suggestion=cleaned)
    return text


def check_symbols(symbols: list[str]) -> list[str]:
    """Every symbol valid and unique after case-folding; returned sorted (the universe's column order).

    ``symbols`` are the keys of a mapping (files, frames, or a long file's groups): exact duplicates cannot
    occur, only case-folded ones."""
    seen: dict[str, str] = {}
    for sym in symbols:
        check_symbol(sym)
        other = seen.setdefault(sym.casefold(), sym)
        if other != sym:
            raise DataError(f"symbols {other!r} and {sym!r} are the same symbol after case-folding",
                            hint="give each member a distinct symbol (case does not distinguish them)",
                            code="DATA_SYMBOL", value=sym, symbol=sym, other=other)
    if not symbols:
        raise DataError("a universe needs at least one symbol", hint="pass files, frames or a long-format "
                        "file with a symbol column", code="DATA_EMPTY")
    return sorted(symbols)


def _zone(df: pd.DataFrame, original: Any = None) -> str | None:
    """'naive', 'zoned' or None (epoch numbers: absolute, no zone question) for one validated member."""
    fmt = str(df.attrs.get("time_format", ""))
    if fmt.endswith("+offset"):
        return "zoned"
    if fmt in _NAIVE_FORMATS:
        return "naive"
    if fmt != "timestamp":
        return None
    if isinstance(original, pd.DataFrame):
        if isinstance(original.index, pd.DatetimeIndex):
            return "naive" if original.index.tz is None else "zoned"
        dtypes = [d for d in original.dtypes if pd.api.types.is_datetime64_any_dtype(d)]
        return "zoned" if any(isinstance(d, pd.DatetimeTZDtype) for d in dtypes) else "naive"
    if isinstance(original, Path):
        try:
            stamps = [f.type for f in pq.read_schema(original) if pa.types.is_timestamp(f.type)]
        except (pa.ArrowException, OSError):
            return None
        return "zoned" if any(t.tz for t in stamps) else "naive"
    return None


def check_zones(zones: Mapping[str, str | None]) -> None:
    """Refuse naive members next to zoned ones (the stated time-zone rule)."""
    naive = sorted(s for s, z in zones.items() if z == "naive")
    zoned = sorted(s for s, z in zones.items() if z == "zoned")
    if naive and zoned:
        raise DataError(f"mixed time zones across symbols: {naive} have times without a zone (read as UTC) "
                        f"but {zoned} have zoned times", hint="give every member the same convention: all "
                        "with UTC offsets / tz-aware, or all naive UTC (e.g. df.index.tz_localize('UTC'))",
                        code="DATA_MIXED_ZONES", symbol=naive[0], naive=naive, zoned=zoned)


def read_files(paths: Mapping[str, str | os.PathLike[str]], *,
               repair: bool = False) -> dict[str, pd.DataFrame]:
    """One validated frame per symbol from its own CSV/Parquet file (errors name symbol and file)."""
    check_symbols(list(paths))
    frames, zones = {}, {}
    for sym in sorted(paths):
        path = Path(os.fspath(paths[sym])).expanduser()
        try:
            df = load_ohlcv(path, repair=repair)
        except QLMError as exc:
            raise with_symbol(exc, sym) from None
        df.attrs["source"] = str(path.resolve())
        frames[sym], zones[sym] = df, _zone(df, path)
    check_zones(zones)
    return frames


def read_frames(frames: Mapping[str, pd.DataFrame], *, repair: bool = False) -> dict[str, pd.DataFrame]:
    """One validated canonical frame per symbol from in-memory frames (errors name the symbol)."""
    check_symbols(list(frames))
    out, zones = {}, {}
    for sym in sorted(frames):
        original = frames[sym]
        label = str(getattr(original, "attrs", {}).get("source") or f"<DataFrame {sym}>")
        try:
            out[sym] = validate_ohlcv(original, repair=repair, source=label)
        except QLMError as exc:
            raise with_symbol(exc, sym) from None
        zones[sym] = _zone(out[sym], original)
    check_zones(zones)
    return out


def _symbol_column(headers: list[str], wanted: str, file: str) -> int:
    """Position of the symbol column (exact, then case/punctuation-insensitive), or a DataError."""
    if wanted in headers:
        return headers.index(wanted)
    norm = [normalize_header(h) for h in headers]
    if normalize_header(wanted) in norm:
        return norm.index(normalize_header(wanted))
    close = difflib.get_close_matches(wanted, headers, n=1, cutoff=0.5)
    alias = [h for h, n in zip(headers, norm, strict=True) if n in SYMBOL_ALIASES]
    closest = close[0] if close else (alias[0] if alias else None)
    hint = (f"did you mean {closest!r}? pass symbol_column={closest!r}; " if closest else "") + \
        "a long-format file needs one column naming each row's symbol"
    raise DataError(f"{file}: no symbol column {wanted!r} (found columns: {headers})", hint=hint,
                    code="DATA_MISSING_COLUMN", file=file, column=wanted, value=wanted, found=headers,
                    closest=closest)


def _csv_symbols(file: str, data: bytes, wanted: str) -> tuple[np.ndarray, CsvLocator]:
    """The symbol column of CSV bytes (as text) and a locator for its rows; checks the header first."""
    data = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    header_line, hs, he = _header_bounds(data)
    header = data[hs:he].decode("utf-8", errors="replace").rstrip("\r")
    delim = sniff_delimiter(header)
    headers = _parse_header(header, delim)
    pos = _symbol_column(headers, wanted, file)
    body_start = min(he + 1, len(data))
    names = [f"f{i}" for i in range(len(headers))]
    try:
        table = pcsv.read_csv(pa.py_buffer(data).slice(body_start),
                              read_options=pcsv.ReadOptions(column_names=names),
                              parse_options=pcsv.ParseOptions(delimiter=delim),
                              convert_options=pcsv.ConvertOptions(include_columns=[names[pos]],
                                                                  column_types={names[pos]: pa.string()}))
    except pa.ArrowInvalid:
        table = None  # malformed rows: the OHLCV reader reports them precisely
    loc = CsvLocator(file, None, data, body_start, header_line, delim)  # type: ignore[arg-type]
    values = np.asarray(table.column(0).to_pylist(), dtype=object) if table is not None else np.array([])
    return values, loc


def _symbol_at(exc: QLMError, symbols: np.ndarray, loc: Locator | None) -> str | None:
    """The symbol on the row a reader error points at (best effort)."""
    row = exc.context.get("line", exc.context.get("row"))
    if not isinstance(row, int) or symbols.size == 0:
        return None
    if isinstance(loc, CsvLocator):
        lines = loc._table()[0]
        pos = int(np.searchsorted(lines, row))
        pos = pos if pos < lines.size and lines[pos] == row else -1
    else:
        pos = row - 1
    value = symbols[pos] if 0 <= pos < symbols.size else None
    return None if value is None else str(value).strip()


def _split_rows(symbols: np.ndarray, loc: Locator) -> dict[str, np.ndarray]:
    """Row positions of each symbol, in file order; a missing symbol is a DataError at its row."""
    text = np.array([("" if s is None else str(s).strip()) for s in symbols], dtype=object)
    empty = np.flatnonzero(text == "")
    if empty.size:
        pos = int(empty[0])
        raise DataError(f"{loc.file}: {loc.phrase(pos)}, column 'symbol': missing symbol", hint="every row "
                        "of a long-format file needs a symbol", code="DATA_SYMBOL", file=loc.file,
                        **loc.where(pos), column="symbol", value="")
    keys, inverse = np.unique(text.astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=keys.size))[:-1]
    return {str(k): rows for k, rows in zip(keys, np.split(order, bounds), strict=True)}


def _duplicate(raw: RawOHLCV, sym: str) -> DataError | None:
    """A duplicate (symbol, time) in sorted rows, naming both rows (before ``finish`` reports only one)."""
    t = raw.time_ns
    step = np.diff(t)
    bad = np.flatnonzero(step <= 0)
    if not bad.size or step[bad[0]] != 0:
        return None
    first, second = int(bad[0]), int(bad[0]) + 1
    when = _iso(int(t[second]))
    a, b = raw.loc.phrase(first), raw.loc.phrase(second)
    return DataError(f"symbol {sym!r}: {raw.loc.file}: duplicate (symbol, time) {when} on {a} and {b}",
                     hint="remove one of the rows, or import with repair=True to keep the later one",
                     code="DATA_DUPLICATE_TIME", file=raw.loc.file, **raw.loc.where(second), column="time",
                     value=when, symbol=sym, first_row=raw.loc.where(first)["row"])


def _read_parquet_long(file: str, src: pa.NativeFile, wanted: str) -> tuple[np.ndarray, RawOHLCV]:
    """The symbol column and the parsed OHLCV of a long-format Parquet file, from one open file."""
    pf = _open(file, src)
    names = list(pf.schema_arrow.names)
    column = names[_symbol_column(names, wanted, file)]
    try:
        symbols = np.asarray(pf.read(columns=[column]).column(0).to_pylist(), dtype=object)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{file}: cannot read the symbol column {column!r}: {exc}", hint=_CORRUPT_HINT,
                        code="DATA_FORMAT", file=file, column=column) from None
    try:
        raw = read_parquet_file(file, src)
    except QLMError as exc:
        sym = _symbol_at(exc, symbols, None)
        raise (with_symbol(exc, sym) if sym else exc) from None
    return symbols, raw


def read_long(path: str | os.PathLike[str], *, symbol_column: str = "symbol",
              repair: bool = False) -> dict[str, pd.DataFrame]:
    """One validated frame per symbol from a long-format CSV/Parquet file (rows of many symbols)."""
    p = Path(os.fspath(path)).expanduser()
    file = str(path)
    if not p.is_file():
        raise DataError(f"{file}: no such file", hint="check the path (relative paths are resolved from "
                        f"{os.getcwd()})", code="NOT_FOUND", file=file)
    with pa.OSFile(str(p)) as src:  # one handle: the format sniff and, for Parquet, every read
        head = src.read(1 << 16)
        parquet = p.suffix.lower() in PARQUET_SUFFIXES or head[:4] == b"PAR1"
        if parquet:
            symbols, raw = _read_parquet_long(file, src, symbol_column)
    fmt = "parquet" if parquet else "csv"
    if not parquet:
        data = _read_csv_data(file, p, head)
        symbols, loc = _csv_symbols(file, data, symbol_column)
        try:
            raw = read_csv_bytes(file, data)
        except QLMError as exc:
            sym = _symbol_at(exc, symbols, loc)
            raise (with_symbol(exc, sym) if sym else exc) from None
    if symbols.size != raw.time_ns.size:
        raise DataError(f"{file}: the symbol column has {symbols.size} values for {raw.time_ns.size} rows",
                        hint="check the file for rows with a different number of fields", code="DATA_FORMAT",
                        file=file, column=symbol_column)
    groups = _split_rows(symbols, raw.loc)
    check_symbols(list(groups))
    frames: dict[str, pd.DataFrame] = {}
    for sym in sorted(groups):
        rows = groups[sym]
        sub_loc = copy.copy(raw.loc)
        sub_loc.positions = None
        sub_loc.remap(rows)
        block = np.ascontiguousarray(raw.block[:, rows])
        volume_missing = raw.volume_missing or bool(np.isnan(block[4]).all())
        if volume_missing:
            block[4] = 0.0
        sub = RawOHLCV(np.ascontiguousarray(raw.time_ns[rows]), block, sub_loc, volume_missing=volume_missing,
                       attrs={**raw.attrs})
        dup = None if repair else _duplicate(sub, sym)
        if dup is not None:
            raise dup
        try:
            frames[sym] = finish(sub, repair=repair, attrs={"source": str(p.resolve()), "format": fmt,
                                                            "symbol": sym})
        except QLMError as exc:
            raise with_symbol(exc, sym) from None
    return frames
