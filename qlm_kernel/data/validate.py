"""Vectorised integrity checks on parsed OHLCV arrays; the first bad row is reported precisely.

Rules: timestamps strictly increasing (no duplicates); prices finite and > 0; volume finite and >= 0;
``high >= max(open, close)`` and ``low <= min(open, close)`` (exact comparison, no tolerance).
Repair (only when asked): stable sort by time, then keep the LAST row of each duplicated timestamp
(the later line in the file wins, as a vendor correction would); every action is recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.data.locate import Locator, error_at
from qlm_kernel.data.schema import OHLCV_COLUMNS

log = logging.getLogger("qlm_kernel.data")


@dataclass
class RawOHLCV:
    """Parsed arrays before validation: int64 UTC ns times, a (5, n) float64 block and their origin."""

    time_ns: np.ndarray
    block: np.ndarray
    loc: Locator
    volume_missing: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)
    repairs: list[dict[str, Any]] = field(default_factory=list)


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _iso(ns: int) -> str:
    return pd.Timestamp(int(ns), tz="UTC").isoformat()


def check_time_order(raw: RawOHLCV, *, repair: bool) -> RawOHLCV:
    """Reject (or, with ``repair``, fix and record) unsorted and duplicated timestamps."""
    t = raw.time_ns
    if t.size < 2:
        return raw
    step = np.diff(t)
    pos = _first(step <= 0)
    if pos is None:
        return raw
    if not repair:
        bad = pos + 1
        if step[pos] == 0:
            raise error_at(raw.loc, bad, "time", f"duplicate timestamp {_iso(t[bad])} (same as the previous "
                           "row)", hint="remove the duplicate rows, or load with repair=True to keep the "
                           "last row of each timestamp", code="DATA_DUPLICATE_TIME", value=_iso(t[bad]))
        raise error_at(raw.loc, bad, "time", f"timestamp {_iso(t[bad])} is earlier than the previous row's "
                       f"{_iso(t[pos])}; rows must be in increasing time order",
                       hint="sort the file by time, or load with repair=True to sort it",
                       code="DATA_UNSORTED", value=_iso(t[bad]), previous=_iso(t[pos]))
    order = np.arange(t.size)
    unsorted = _first(step < 0)
    if unsorted is not None:
        first_unsorted = raw.loc.where(unsorted + 1)
        order = np.argsort(t, kind="stable")
        moved = int(np.count_nonzero(order != np.arange(t.size)))
        raw.repairs.append({"action": "sorted", "rows_moved": moved, "first_unsorted": first_unsorted})
        t = t[order]
    keep = np.ones(t.size, dtype=bool)
    keep[:-1] = t[1:] != t[:-1]  # keep the last row of each equal run (stable sort kept file order)
    dropped = int(t.size - np.count_nonzero(keep))
    if dropped:
        first_dup = int(t[_first(~keep) or 0])
        raw.repairs.append({"action": "dropped_duplicates", "rows_dropped": dropped, "keep": "last",
                            "first_duplicate_time": _iso(first_dup)})
        order = order[keep]
        t = t[keep]
    raw.block = np.ascontiguousarray(raw.block[:, order])
    raw.time_ns = np.ascontiguousarray(t)
    raw.loc.remap(order)
    done = [f"sorted ({r['rows_moved']} rows moved)" if r["action"] == "sorted" else
            f"dropped {r['rows_dropped']} duplicate-timestamp rows (kept the last)" for r in raw.repairs]
    log.warning("%s: repaired: %s (see df.attrs['repairs'])", raw.loc.file, "; ".join(done))
    return raw


def check_values(raw: RawOHLCV) -> None:
    """Reject NaN/inf/non-positive prices, bad volume and OHLC inconsistencies; earliest bad row wins."""
    o, h, lo, c, v = raw.block
    problems: list[tuple[int, int, str, str, str, str]] = []  # (row, rank, field, problem, hint, code)
    fix_missing = "fill or drop the rows with missing/invalid prices in the source, then reload"
    for rank, (name, col) in enumerate(zip(OHLCV_COLUMNS[:4], (o, h, lo, c), strict=True)):
        pos = _first(~(col > 0) | np.isinf(col))
        if pos is not None:
            x = col[pos]
            what = ("missing or NaN price" if np.isnan(x) else "infinite price" if np.isinf(x)
                    else "negative price" if x < 0 else "zero price")
            problems.append((pos, rank, name, what, fix_missing, "DATA_BAD_PRICE"))
    if not raw.volume_missing:
        pos = _first(~(v >= 0) | np.isinf(v))
        if pos is not None:
            x = v[pos]
            what = "missing or NaN volume" if np.isnan(x) else "infinite volume" if np.isinf(x) else \
                "negative volume"
            problems.append((pos, 4, "volume", what, "volume must be a finite number >= 0 (use 0 when "
                             "unknown, or drop the volume column)", "DATA_BAD_VOLUME"))
    # NaN compares False, so rows with missing prices never show up here (they are reported above).
    pos = _first(h < np.maximum(o, c))
    if pos is not None:
        ref = "open" if o[pos] > c[pos] else "close"
        what = f"high {float(h[pos])!r} is below {ref} {float(max(o[pos], c[pos]))!r}"
        problems.append((pos, 5, "high", what, "high must be >= open and close; check the column order "
                         "and the source data", "DATA_OHLC_INCONSISTENT"))
    pos = _first(lo > np.minimum(o, c))
    if pos is not None:
        ref = "open" if o[pos] < c[pos] else "close"
        what = f"low {float(lo[pos])!r} is above {ref} {float(min(o[pos], c[pos]))!r}"
        problems.append((pos, 6, "low", what, "low must be <= open and close; check the column order and "
                         "the source data", "DATA_OHLC_INCONSISTENT"))
    if problems:
        pos, _, name, what, hint, code = min(problems)
        value = float(raw.block[OHLCV_COLUMNS.index(name), pos])
        raise error_at(raw.loc, pos, name, what, hint=hint, code=code, value=value)
