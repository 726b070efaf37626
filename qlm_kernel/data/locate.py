"""Say exactly where a bad value lives: file, line/row, column and the value as written.

Conventions (also in every message):
- CSV: ``line N`` is the physical line number in the file, the header being line 1 (blank lines count as
  lines; a quoted value spanning lines is not supported). ``context["row"]`` and ``context["line"]`` both
  hold N.
- Parquet and DataFrames: ``row N`` is the 1-based data row (the first data row is row 1).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from qlm_kernel.data.schema import ColumnMap
from qlm_kernel.errors import DataError

_MISSING: Any = object()


class Locator:
    """Maps a 0-based data position to its place in the source; subclasses know CSV lines or table rows."""

    def __init__(self, file: str, columns: ColumnMap | None = None) -> None:
        self.file = file
        self.columns = columns
        self.positions: np.ndarray | None = None  # set after a repair: new position -> original position

    def remap(self, positions: np.ndarray) -> None:
        """Record that data position i now comes from original position ``positions[i]`` (after repair)."""
        self.positions = positions if self.positions is None else self.positions[positions]

    def original(self, pos: int) -> int:
        return int(self.positions[pos]) if self.positions is not None else int(pos)

    def where(self, pos: int) -> dict[str, Any]:
        return {"row": self.original(pos) + 1}

    def phrase(self, pos: int) -> str:
        return f"row {self.original(pos) + 1}"

    def raw(self, pos: int, field: str) -> str | None:
        """The value as written in the source, when the source is text; else None."""
        return None

    def column(self, field: str) -> str:
        return self.columns.name(field) if self.columns is not None else field


class TableLocator(Locator):
    """Parquet files and DataFrames: ``row N`` counts data rows from 1."""


class CsvLocator(Locator):
    """CSV text: maps data rows to physical lines (pyarrow skips blank lines, so we count them back in)."""

    def __init__(
        self,
        file: str,
        columns: ColumnMap,
        data: bytes,
        body_start: int,
        header_line: int,
        delimiter: str,
    ) -> None:
        super().__init__(file, columns)
        self.data = data
        self.body_start = body_start
        self.header_line = header_line
        self.delimiter = delimiter
        self._lines: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(line numbers, starts, ends) of the non-blank body lines; computed once, only on error paths."""
        if self._lines is None:
            body = np.frombuffer(self.data, dtype=np.uint8)[self.body_start:]
            nl = np.flatnonzero(body == 10)
            starts = np.concatenate([[0], nl + 1])
            ends = np.concatenate([nl, [body.size]])
            length = ends - starts
            has_cr = np.zeros(length.size, dtype=bool)
            nz = length > 0
            has_cr[nz] = body[ends[nz] - 1] == 13
            nonblank = np.flatnonzero(length - has_cr > 0)
            self._lines = (
                nonblank + self.header_line + 1,
                starts[nonblank] + self.body_start,
                ends[nonblank] - has_cr[nonblank] + self.body_start,
            )
        return self._lines

    def data_lines(self) -> int:
        """How many non-blank lines follow the header."""
        return int(self._table()[0].size)

    def line_of(self, pos: int) -> int:
        numbers = self._table()[0]
        orig = self.original(pos)
        return int(numbers[orig]) if orig < numbers.size else int(self.header_line + 1 + orig)

    def line_text(self, pos: int) -> str:
        numbers, starts, ends = self._table()
        orig = self.original(pos)
        if orig >= numbers.size:
            return ""
        return self.data[starts[orig]:ends[orig]].decode("utf-8", errors="replace")

    def where(self, pos: int) -> dict[str, Any]:
        line = self.line_of(pos)
        return {"row": line, "line": line}

    def phrase(self, pos: int) -> str:
        return f"line {self.line_of(pos)}"

    def raw(self, pos: int, field: str) -> str | None:
        if self.columns is None or field not in self.columns.index:
            return None
        try:
            fields = next(csv.reader([self.line_text(pos)], delimiter=self.delimiter))
        except (csv.Error, StopIteration):
            return None
        idx = self.columns.index[field]
        return fields[idx].strip() if idx < len(fields) else None


def error_at(
    loc: Locator,
    pos: int,
    field: str,
    problem: str,
    *,
    hint: str,
    code: str,
    value: Any = _MISSING,
    **extra: Any,
) -> DataError:
    """A DataError for data position ``pos`` / canonical ``field`` with file, row(/line), column, value."""
    raw = loc.raw(pos, field)
    shown = raw if raw is not None else (None if value is _MISSING else value)
    column = loc.column(field)
    msg = f"{loc.file}: {loc.phrase(pos)}, column {column!r}: {problem}"
    if shown is not None and shown is not _MISSING:
        msg += f" (value {shown!r})"
    return DataError(
        msg, hint=hint, code=code, file=loc.file, **loc.where(pos), column=column, value=shown, **extra
    )


def first_failing(values: pa.Array | pa.ChunkedArray, convert: Callable[[Any], Any]) -> int | None:
    """Index of the first element ``convert`` rejects (ArrowInvalid), by bisection: about 2n work in total."""

    def fails(part: Any) -> bool:
        try:
            convert(part)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OverflowError):
            return True
        return False

    lo, hi = 0, len(values)
    if hi == 0 or not fails(values):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fails(values.slice(lo, mid - lo)):
            hi = mid
        else:
            lo = mid
    return lo
