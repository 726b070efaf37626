"""The canonical OHLCV schema and the rules that map real-world headers onto it.

Canonical frame: a ``DatetimeIndex`` named ``time`` (``datetime64[ns, UTC]``) and the float64 columns
``open, high, low, close, volume`` held in ONE C-contiguous 2-D block, so ``df["close"].to_numpy()`` is a
zero-copy view the engine can hand straight to Numba.

Header matching (CSV headers, Parquet fields, DataFrame columns): names are compared after lower-casing
and dropping everything but letters and digits, so ``Open``, `` HIGH ``, ``<CLOSE>``, ``adj_close`` and
``Adj. Close`` all normalise. For each field the aliases below are tried in order and the first present
wins, which gives these documented rules:

- time: ``time, timestamp, datetime, date, date_time, gmt time, utc time, open time, ts, t``; failing that
  an unnamed first column (pandas' ``df.to_csv()`` of an unnamed index, ``Unnamed: 0``, ``index``).
- close: ``close`` wins over ``last``, which wins over ``adj close``. Open/high/low are unadjusted in
  vendor files, so the unadjusted close is the consistent choice; ``Adj Close`` is used only when no
  close exists (``df.attrs["close_column"]`` records which header was used).
- volume: ``volume``, then ``vol``, then ``tick volume``; it is optional (missing -> 0.0 and
  ``df.attrs["volume_missing"] = True``). All other fields are required.
- Two headers that normalise to the same chosen name (``Open`` and ``open``) are ambiguous: DataError.
- Other columns are ignored and listed in ``df.attrs["ignored_columns"]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.errors import DataError

OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
TIME_NAME = "time"

# Aliases in priority order (already normalised: lower-case letters and digits only).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "time": ("time", "timestamp", "datetime", "date", "gmttime", "utctime", "timeutc", "datetimeutc",
             "dateutc", "opentime", "ts", "t"),
    "open": ("open", "openprice", "o"),
    "high": ("high", "highprice", "h"),
    "low": ("low", "lowprice", "l"),
    "close": ("close", "closeprice", "c", "last", "adjclose", "adjustedclose"),
    "volume": ("volume", "vol", "v", "tickvolume", "tickvol"),
}
# Names that mean "this was an unnamed index" and may serve as the time column when nothing else does.
UNNAMED_INDEX_NAMES = ("", "unnamed0", "index", "indexlevel0")
REQUIRED_FIELDS = ("time", "open", "high", "low", "close")


def normalize_header(name: object) -> str:
    """Lower-case a header and keep only letters and digits (``' Adj. Close '`` -> ``'adjclose'``)."""
    return re.sub(r"[^0-9a-z]", "", str(name).strip().lower())


@dataclass
class ColumnMap:
    """Which source column feeds each canonical field (indices into the source's header list)."""

    headers: list[str]
    index: dict[str, int]  # canonical field -> source column position ("volume" may be absent)
    ignored: list[str] = field(default_factory=list)

    def name(self, canonical: str) -> str:
        """The header as written in the source for a canonical field (the canonical name if absent)."""
        pos = self.index.get(canonical)
        return self.headers[pos] if pos is not None else canonical

    @property
    def has_volume(self) -> bool:
        return "volume" in self.index


def resolve_columns(
    headers: Sequence[object],
    *,
    file: str,
    time_column: str | None = None,
    fallback_time: int | None = None,
    where: dict[str, Any] | None = None,
) -> ColumnMap:
    """Map source headers to canonical fields by the documented alias rules; DataError if ambiguous/missing.

    ``fallback_time`` is the position of a column that may serve as time when no alias matches (e.g. the
    pandas index stored in a Parquet file); ``where`` adds location context (e.g. ``line=1`` for CSV).
    """
    names = [str(h) for h in headers]
    norm = [normalize_header(h) for h in names]
    where = dict(where or {})
    chosen: dict[str, int] = {}
    for canonical, aliases in FIELD_ALIASES.items():
        if canonical == "time" and time_column is not None:
            wanted = normalize_header(time_column)
            hits = [i for i, n in enumerate(names) if n == time_column or norm[i] == wanted]
            if not hits:
                raise DataError(
                    f"{file}: time column {time_column!r} (given by time_column=) is not in the header",
                    hint=f"the columns are {names}; pass one of them as time_column=",
                    code="DATA_MISSING_COLUMN", file=file, column=time_column, value=time_column,
                    **where,
                )
            chosen["time"] = hits[0]
            continue
        for alias in aliases:
            hits = [i for i, n in enumerate(norm) if n == alias and i not in chosen.values()]
            if len(hits) > 1:
                clash = [names[i] for i in hits]
                raise DataError(
                    f"{file}: columns {clash} both look like {canonical!r}; QLM will not guess which one",
                    hint="rename or drop one of them so each of time/open/high/low/close/volume appears once",
                    code="DATA_AMBIGUOUS_COLUMN", file=file, column=clash[1], value=clash, **where,
                )
            if hits:
                chosen[canonical] = hits[0]
                break
    if "time" not in chosen:
        unnamed = [i for i, n in enumerate(norm) if n in UNNAMED_INDEX_NAMES and i not in chosen.values()]
        if fallback_time is not None and fallback_time not in chosen.values():
            chosen["time"] = fallback_time
        elif unnamed and unnamed[0] == 0:
            chosen["time"] = 0
    missing = [f for f in REQUIRED_FIELDS if f not in chosen]
    if missing:
        first = missing[0]
        aliases = ", ".join(FIELD_ALIASES[first][:5])
        raise DataError(
            f"{file}: required column {first!r} is missing (found columns: {names})",
            hint=(f"add a {first!r} column (accepted names, any case: {aliases}); the file needs time, open, "
                  "high, low and close, volume is optional"),
            code="DATA_MISSING_COLUMN", file=file, column=first, value=None, missing=missing,
            found=names, **where,
        )
    used = set(chosen.values())
    ignored = [names[i] for i in range(len(names)) if i not in used]
    return ColumnMap(headers=names, index=chosen, ignored=ignored)


def new_block(n: int) -> np.ndarray:
    """An uninitialised (5, n) float64 C-contiguous block: row j holds OHLCV column j."""
    return np.empty((len(OHLCV_COLUMNS), n), dtype=np.float64)


def build_frame(time_ns: np.ndarray, block: np.ndarray, attrs: dict[str, Any] | None = None) -> pd.DataFrame:
    """Wrap int64 UTC nanoseconds and a (5, n) float64 block as the canonical frame without copying the block.

    pandas stores a single-dtype frame as one (ncols, nrows) block; passing ``block.T`` keeps ``block``
    itself as that storage, so every column is a contiguous row of it.
    """
    block = np.ascontiguousarray(block, dtype=np.float64)
    index = pd.DatetimeIndex(np.asarray(time_ns, dtype=np.int64).view("M8[ns]"), name=TIME_NAME)
    index = index.tz_localize("UTC")
    df = pd.DataFrame(block.T, index=index, columns=list(OHLCV_COLUMNS), copy=False)
    if attrs:
        df.attrs.update(attrs)
    return df
