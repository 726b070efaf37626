"""Read OHLCV CSV text with pyarrow.csv and an explicit schema (time as text, prices as float64).

pandas never sees the raw text, so nothing is type-guessed. The header is parsed here (delimiter sniffed
among ``, ; TAB |`` from the header line unless given), the body is handed to pyarrow with generated
column names, and every failure is traced back to a physical line (see ``locate``).
"""

from __future__ import annotations

import contextlib
import csv
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from qlm_kernel.data.locate import CsvLocator, error_at, first_failing
from qlm_kernel.data.schema import OHLCV_COLUMNS, ColumnMap, new_block, normalize_header, resolve_columns
from qlm_kernel.data.timeparse import parse_time_strings
from qlm_kernel.data.validate import RawOHLCV
from qlm_kernel.errors import DataError

DELIMITERS = (",", ";", "\t", "|")
_BLOCK_SIZE = 1 << 22
_CLOCK = re.compile(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?")
_NON_SPACE = re.compile(rb"\S")  # searching never copies the (possibly huge) text, unlike bytes.strip()
_UTF8_HINT = ("save the file as UTF-8 text (Excel: 'CSV UTF-8'; or `iconv -f latin1 -t utf-8 in.csv > "
              "out.csv`); if the file is damaged, re-download or re-export it")


def _line_bounds(data: bytes, pos: int) -> tuple[int, int, int]:
    """(1-based line number, line start, line end) of the byte at ``pos``."""
    start = data.rfind(b"\n", 0, pos) + 1
    end = data.find(b"\n", pos)
    return data.count(b"\n", 0, pos) + 1, start, len(data) if end < 0 else end


def _header_bounds(data: bytes) -> tuple[int, int, int]:
    """(line number, start, end) of the first non-blank line."""
    start, line = 0, 1
    while True:
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        if data[start:end].strip() or end >= len(data):
            return line, start, end
        start, line = end + 1, line + 1


def sniff_delimiter(header: str) -> str:
    """The candidate delimiter that occurs most often in the header line (',' when none occurs)."""
    counts = [(header.count(d), -i, d) for i, d in enumerate(DELIMITERS)]
    best = max(counts)
    return best[2] if best[0] > 0 else ","


def _parse_header(text: str, delimiter: str) -> list[str]:
    try:
        fields = next(csv.reader([text], delimiter=delimiter))
    except (csv.Error, StopIteration):
        fields = text.split(delimiter)
    return [f.strip() for f in fields]


def check_text(file: str, data: bytes) -> None:
    """Reject empty files, binary content and non-UTF-8 bytes, naming line and column of the first one."""
    if _NON_SPACE.search(data) is None:
        raise DataError(f"{file}: the file is empty", hint="export the data again; a CSV needs a header line "
                        "(time,open,high,low,close[,volume]) and at least one data line",
                        code="DATA_EMPTY", file=file, row=1, line=1, value="")
    bad: tuple[int, str] | None = None
    nul = data.find(b"\x00")
    if nul >= 0:
        bad = (nul, "binary data (a NUL byte)")
    if np.frombuffer(data, dtype=np.uint8).max() >= 0x80:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if bad is None or exc.start < bad[0]:
                bad = (exc.start, "bytes that are not valid UTF-8")
    if bad is None:
        return
    pos, what = bad
    hint = _UTF8_HINT
    if data[:4] == b"PK\x03\x04":
        hint = "this looks like an Excel workbook or a zip archive; save the sheet as 'CSV UTF-8' first"
    elif data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        hint = "the file is UTF-16 encoded; save it as UTF-8 (Excel: 'CSV UTF-8')"
    line, start, _ = _line_bounds(data, pos)
    header_line, hs, he = _header_bounds(data)
    column = None
    if line > header_line:
        header = data[hs:he].decode("utf-8", errors="replace").rstrip("\r")
        delim = sniff_delimiter(header)
        names = _parse_header(header, delim)
        idx = data[start:pos].count(delim.encode())
        column = names[idx] if idx < len(names) else None
    where = f"line {line}" + (f", column {column!r}" if column is not None else "")
    raise DataError(f"{file}: {where}: {what} at byte offset {pos}; not UTF-8 text", hint=hint,
                    code="DATA_ENCODING", file=file, row=line, line=line, column=column,
                    value=repr(data[pos:pos + 8]), byte_offset=pos)


def _read(body: pa.Buffer, names: list[str], include: list[str], types: dict[str, pa.DataType],
          delimiter: str, *, threads: bool, handler=None) -> pa.Table:
    return pcsv.read_csv(
        pa.BufferReader(body),
        read_options=pcsv.ReadOptions(column_names=names, use_threads=threads, block_size=_BLOCK_SIZE),
        parse_options=pcsv.ParseOptions(delimiter=delimiter, invalid_row_handler=handler),
        convert_options=pcsv.ConvertOptions(include_columns=include, column_types=types,
                                            strings_can_be_null=True),
    )


def _malformed_row_error(loc: CsvLocator, body: pa.Buffer, names: list[str], delimiter: str,
                         cols: ColumnMap) -> DataError:
    """Find the first line with a wrong field count (re-read on one thread: only then are rows numbered)."""
    found: dict[str, object] = {}

    def handler(row: pcsv.InvalidRow) -> str:
        if not found:
            found.update(expected=row.expected_columns, actual=row.actual_columns, number=row.number,
                         text=row.text)
        return "error"

    with contextlib.suppress(pa.ArrowInvalid):
        _read(body, names, [names[0]], {names[0]: pa.string()}, delimiter, threads=False, handler=handler)
    expected, actual = int(found.get("expected", len(names))), int(found.get("actual", 0))
    number = found.get("number")
    pos = int(number) - 1 if isinstance(number, int) else 0
    text = str(found.get("text", ""))
    last = pos == loc.data_lines() - 1
    if actual < expected:
        problem = (f"{'truncated last line' if last else 'truncated line'}: {actual} fields but the header "
                   f"has {expected}")
        column = cols.headers[actual] if actual < len(cols.headers) else None
        hint = ("the file looks cut off or damaged; re-download or re-export it (every line needs one value "
                "per header column)")
    else:
        problem = f"{actual} fields but the header has {expected}"
        column = None
        hint = (f"values containing the delimiter {delimiter!r} must be quoted; check that the delimiter "
                "is right (pass delimiter=...) and that the line is not two lines run together")
    where = loc.where(pos)
    at = loc.phrase(pos) + (f", column {column!r}" if column is not None else "")
    return DataError(f"{loc.file}: {at}: {problem} (text {text[:120]!r})",
                     hint=hint, code="DATA_MALFORMED_ROW", file=loc.file, **where, column=column,
                     value=text[:200], expected_fields=expected, actual_fields=actual)


def _bad_number_error(loc: CsvLocator, exc: Exception, body: pa.Buffer, names: list[str], delimiter: str,
                      cols: ColumnMap) -> DataError:
    """Re-read the numeric columns as text and bisect for the first value float64 parsing rejects."""
    fields = [f for f in OHLCV_COLUMNS if f in cols.index]
    include = [names[cols.index[f]] for f in fields]
    table = _read(body, names, include, dict.fromkeys(include, pa.string()), delimiter, threads=True)
    best: tuple[int, str] | None = None
    for f, name in zip(fields, include, strict=True):
        text = pc.utf8_trim_whitespace(table[name])
        pos = first_failing(text, lambda a: pc.cast(a, pa.float64()))
        if pos is not None and (best is None or pos < best[0]):
            best = (pos, f)
    hint = ("numbers must be plain decimals with '.' as the decimal point and no thousands separators or "
            "currency signs (e.g. 1234.5); fix the value or the export settings")
    if best is not None:
        return error_at(loc, best[0], best[1], "unparsable number", hint=hint, code="DATA_BAD_NUMBER")
    match = re.search(r"column #(\d+)", str(exc))
    column = cols.headers[int(match.group(1))] if match and int(match.group(1)) < len(cols.headers) else None
    return DataError(f"{loc.file}: column {column!r}: {exc}", hint=hint, code="DATA_BAD_NUMBER",
                     file=loc.file, column=column)


def _fill(row: np.ndarray, col: pa.ChunkedArray) -> None:
    off = 0
    for chunk in col.chunks:
        n = len(chunk)
        row[off:off + n] = chunk.to_numpy(zero_copy_only=False)
        off += n


def _date_part(cols: ColumnMap) -> int | None:
    """Position of a separate 'Date' column when the time column is literally 'Time' (MT4/MT5-style split)."""
    if normalize_header(cols.headers[cols.index["time"]]) != "time":
        return None
    dates = [i for i, h in enumerate(cols.headers) if normalize_header(h) == "date"]
    return dates[0] if dates else None


def _join_date_and_clock(date: pa.ChunkedArray, clock: pa.ChunkedArray, cols: ColumnMap,
                         date_pos: int) -> pa.ChunkedArray:
    """'Date' + 'Time' -> 'Date Time' when the time column holds only clock times (HH:MM[:SS[.f]])."""
    first = clock.drop_null()
    if len(first) == 0 or not _CLOCK.fullmatch(str(first[0].as_py()).strip()):
        return clock  # the 'Time' column holds full timestamps; the 'Date' column is just ignored
    cols.ignored = [h for h in cols.ignored if h != cols.headers[date_pos]]
    clock = pc.replace_substring_regex(pc.utf8_trim_whitespace(clock), r"^(\d):", r"0\1:")  # 1:00 -> 01:00
    joined = pc.binary_join_element_wise(pc.utf8_trim_whitespace(date), clock, " ")
    return joined if isinstance(joined, pa.ChunkedArray) else pa.chunked_array([joined])


def read_csv_bytes(file: str, data: bytes, *, delimiter: str | None = None,
                   time_column: str | None = None) -> RawOHLCV:
    """Parse CSV bytes into unvalidated arrays, or raise a DataError naming line and column."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    check_text(file, data)
    header_line, hs, he = _header_bounds(data)
    header = data[hs:he].decode("utf-8").rstrip("\r")
    delim = delimiter or sniff_delimiter(header)
    headers = _parse_header(header, delim)
    cols = resolve_columns(headers, file=file, time_column=time_column,
                           where={"row": header_line, "line": header_line})
    body_start = min(he + 1, len(data))
    loc = CsvLocator(file, cols, data, body_start, header_line, delim)
    if _NON_SPACE.search(data, body_start) is None:
        line = header_line + 1
        raise DataError(f"{file}: line {line}: the file has a header but no data lines", hint="the export "
                        "is empty or was cut off after the header; export the data again",
                        code="DATA_EMPTY", file=file, row=line, line=line, value="")

    names = [f"f{i}" for i in range(len(headers))]
    fields = [f for f in ("time", *OHLCV_COLUMNS) if f in cols.index]
    include = [names[cols.index[f]] for f in fields]
    types = {name: pa.float64() for name in include}
    types[names[cols.index["time"]]] = pa.string()
    date_pos = _date_part(cols)
    if date_pos is not None:
        include.append(names[date_pos])
        types[names[date_pos]] = pa.string()
    body = pa.py_buffer(data).slice(body_start)
    state = {"malformed": False}

    def on_invalid(row: pcsv.InvalidRow) -> str:
        state["malformed"] = True
        return "error"

    try:
        table = _read(body, names, include, types, delim, threads=True, handler=on_invalid)
    except pa.ArrowInvalid as exc:
        if state["malformed"]:
            raise _malformed_row_error(loc, body, names, delim, cols) from None
        raise _bad_number_error(loc, exc, body, names, delim, cols) from None

    n = table.num_rows
    time_text = table[names[cols.index["time"]]]
    if date_pos is not None:
        time_text = _join_date_and_clock(table[names[date_pos]], time_text, cols, date_pos)
    time_ns, time_format = parse_time_strings(time_text, loc)
    block = new_block(n)
    volume_missing = True
    for j, f in enumerate(OHLCV_COLUMNS):
        if f in cols.index:
            col = table[names[cols.index[f]]]
            if f == "volume" and col.null_count == n:
                continue  # an all-empty volume column is the same as no volume column
            _fill(block[j], col)
            if f == "volume":
                volume_missing = False
    if volume_missing:
        block[4] = 0.0
    attrs = {"time_format": time_format, "delimiter": delim, "close_column": cols.name("close"),
             "ignored_columns": cols.ignored}
    return RawOHLCV(time_ns, block, loc, volume_missing=volume_missing, attrs=attrs)
