"""Turn a time column (text, integers or Arrow timestamps) into int64 UTC nanoseconds, deterministically.

Accepted, and nothing else (QLM never guesses day/month order):

- ISO-8601 text: ``2020-01-02``, ``2020-01-02 03:04``, ``2020-01-02T03:04:05.123456789``, with or without a
  zone (``Z``, ``+05:30``, ``+0530``, ``+05``). **Text without a zone is taken to be UTC.** A column must
  be all-zoned or all-naive; a mix is rejected. Year-first dates with ``.`` or ``/`` (``2020.01.02``,
  ``2020/1/2``, MetaTrader style) are read as ISO; day-first or month-first dates are rejected.
- CSV only: a ``Date`` column plus a ``Time`` column holding clock times (``HH:MM[:SS]``) are joined.
- Epoch integers. The unit is inferred from the largest magnitude in the column:
  ``< 1e11`` seconds, ``< 1e14`` milliseconds, ``< 1e17`` microseconds, else nanoseconds (so seconds up to
  the year 5138 and milliseconds from March 1973 are read correctly).
- 8-digit integers that are all valid ``YYYYMMDD`` dates between 1800 and 2300 are read as dates (epoch
  seconds of that size would all fall in Jul-Sep 1970).
- Arrow timestamps of any unit (naive = UTC, zoned = converted) and Arrow dates.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from qlm_kernel.data.locate import Locator, error_at, first_failing

NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
EPOCH_THRESHOLDS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
_INT_RE = re.compile(r"[+-]?\d+")
_YEAR_FIRST_RE = re.compile(r"\d{4}[./]\d{1,2}[./]\d{1,2}\b")
_ZONED_RE = re.compile(r"(?:[Zz]|[T ]\d{2}(?::?\d{2}){0,2}(?:\.\d+)?[+-]\d{2}(?::?\d{2})?)$")
_TIME_HINT = (
    "use ISO-8601 text (YYYY-MM-DD or YYYY-MM-DD HH:MM:SS, optionally with Z or +HH:MM) or epoch integers "
    "in s/ms/us/ns; QLM does not guess day/month order"
)


def epoch_unit(max_abs: float) -> str:
    """The epoch unit implied by the largest magnitude in a column (documented thresholds)."""
    for limit, unit in EPOCH_THRESHOLDS:
        if max_abs < limit:
            return unit
    return "ns"


def _missing_time(loc: Locator, pos: int) -> Exception:
    return error_at(loc, pos, "time", "missing timestamp", hint="every row needs a timestamp; fill or drop "
                    "rows with an empty time", code="DATA_BAD_TIME", value="")


def _yyyymmdd(values: np.ndarray) -> np.ndarray | None:
    """Nanoseconds if every value is a valid YYYYMMDD date in 1800..2300, else None."""
    if values.size == 0 or values.min() < 18000101 or values.max() > 23001231:
        return None
    year, month, day = values // 10000, (values // 100) % 100, values % 100
    if ((month < 1) | (month > 12) | (day < 1) | (day > 31)).any():
        return None
    months = (year - 1970) * 12 + (month - 1)
    days = months.astype("M8[M]").astype("M8[D]") + (day - 1).astype("m8[D]")
    back = days.astype("M8[M]").astype(np.int64)
    if (back != months).any():  # day overflowed its month (e.g. 20200230)
        return None
    return days.astype("M8[ns]").view(np.int64)


def epoch_to_ns(values: np.ndarray, loc: Locator) -> tuple[np.ndarray, str]:
    """int64 epoch values -> ns with the magnitude rule (or YYYYMMDD); returns (ns, format label)."""
    values = np.asarray(values, dtype=np.int64)
    dates = _yyyymmdd(values)
    if dates is not None:
        return dates, "yyyymmdd"
    if values.size == 0:
        return values, "epoch_s"
    unit = epoch_unit(float(np.abs(values).max()))
    factor = NS_PER_UNIT[unit]
    if factor == 1:
        return values, "epoch_ns"
    limit = np.iinfo(np.int64).max // factor
    over = np.abs(values) > limit
    if over.any():
        pos = int(np.flatnonzero(over)[0])
        raise error_at(loc, pos, "time", f"epoch timestamp (read as {unit}) is outside 1677-2262",
                       hint="pandas nanosecond timestamps cover 1677-09-21 to 2262-04-11; check the unit "
                       "and the value", code="DATA_BAD_TIME", value=int(values[pos]), unit=unit)
    return values * factor, f"epoch_{unit}"


def parse_time_strings(col: pa.Array | pa.ChunkedArray, loc: Locator) -> tuple[np.ndarray, str]:
    """Text timestamps -> (int64 UTC ns, format label); the first row decides zoned/naive/epoch."""
    if col.null_count:
        raise _missing_time(loc, int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0]))
    text = pc.utf8_trim_whitespace(col)
    if len(text) == 0:
        return np.empty(0, dtype=np.int64), "iso8601"
    empty = pc.equal(pc.utf8_length(text), 0)
    if pc.any(empty).as_py():
        raise _missing_time(loc, int(np.flatnonzero(empty.to_numpy(zero_copy_only=False))[0]))
    first = text[0].as_py()

    if _INT_RE.fullmatch(first):
        try:
            ints = pc.cast(text, pa.int64())
        except pa.ArrowInvalid:
            pos = first_failing(text, lambda a: pc.cast(a, pa.int64()))
            raise error_at(loc, pos or 0, "time", "not an epoch integer like the first row",
                           hint=_TIME_HINT, code="DATA_BAD_TIME") from None
        return epoch_to_ns(ints.to_numpy(), loc)

    if _YEAR_FIRST_RE.match(first):  # 2020.01.02 / 2020/1/2 (MT4, some vendors): unambiguous, year first
        text = pc.replace_substring_regex(text, r"^(\d{4})[./](\d{1,2})[./](\d{1,2})", r"\1-\2-\3")
        text = pc.replace_substring_regex(text, r"^(\d{4})-(\d)-", r"\1-0\2-")
        text = pc.replace_substring_regex(text, r"^(\d{4}-\d{2})-(\d)(\D|$)", r"\1-0\2\3")
        first = text[0].as_py()
    zoned = bool(_ZONED_RE.search(first))
    target = pa.timestamp("ns", "UTC") if zoned else pa.timestamp("ns")
    try:
        stamps = pc.cast(text, target)
    except pa.ArrowInvalid:
        pos = first_failing(text, lambda a: pc.cast(a, target)) or 0
        other = pa.timestamp("ns") if zoned else pa.timestamp("ns", "UTC")
        try:
            pc.cast(text.slice(pos, 1), other)
            mixed = True
        except pa.ArrowInvalid:
            mixed = False
        if mixed:
            kind = "has no zone" if zoned else "has a zone offset"
            raise error_at(loc, pos, "time", f"timestamp {kind} but the first row "
                           f"{'does' if zoned else 'does not'}; mixing zoned and naive times is ambiguous",
                           hint="write every timestamp with the same convention (all UTC offsets, or all "
                           "naive = UTC)", code="DATA_BAD_TIME") from None
        raise error_at(loc, pos, "time", "unrecognised or out-of-range timestamp", hint=_TIME_HINT,
                       code="DATA_BAD_TIME") from None
    return pc.cast(stamps, pa.int64()).to_numpy(), "iso8601" + ("+offset" if zoned else "")


def arrow_time_to_ns(col: pa.Array | pa.ChunkedArray, loc: Locator) -> tuple[np.ndarray, str]:
    """Any supported Arrow time column (timestamp/date/integer/text) -> (int64 UTC ns, format label)."""
    typ = col.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        return parse_time_strings(col, loc)
    if col.null_count:
        raise _missing_time(loc, int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0]))
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        target = pa.timestamp("ns", typ.tz) if pa.types.is_timestamp(typ) else pa.timestamp("ns")
        try:
            ns = pc.cast(col, target)
        except pa.ArrowInvalid:
            pos = first_failing(col, lambda a: pc.cast(a, target)) or 0
            raise error_at(loc, pos, "time", "timestamp outside the nanosecond range 1677-2262",
                           hint="pandas nanosecond timestamps cover 1677-09-21 to 2262-04-11",
                           code="DATA_BAD_TIME", value=str(col[pos])) from None
        label = "timestamp" if pa.types.is_timestamp(typ) else "date"
        return pc.cast(ns, pa.int64()).to_numpy(), label
    if pa.types.is_integer(typ):
        return epoch_to_ns(pc.cast(col, pa.int64()).to_numpy(), loc)
    raise error_at(loc, 0, "time", f"time column has unsupported type {typ}",
                   hint="store time as a timestamp, a date, epoch integers or ISO-8601 text",
                   code="DATA_BAD_TIME", value=str(typ))
