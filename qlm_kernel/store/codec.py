"""JSON columns, timestamps and row conversion: how Python values become TEXT/REAL cells and back.

JSON is written with Python's encoder (NaN/Infinity allowed, so stats round-trip exactly); numpy
scalars/arrays, pandas objects (``to_dict``), datetimes and paths are converted, anything else is
stored as ``str(value)``. Timestamps are ISO-8601 UTC text with microseconds, which sort correctly.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from os import PathLike
from typing import Any

from qlm_kernel.errors import ConfigError


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):  # also pandas Timestamp
        return value.isoformat()
    if hasattr(value, "to_dict") and callable(value.to_dict):  # pandas Series / DataFrame
        return value.to_dict()
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        return value.tolist()
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, PathLike):
        return str(value)
    if isinstance(value, BaseException):
        return error_record(value)
    return str(value)


def dumps(value: Any, *, sort_keys: bool = False) -> str | None:
    """JSON text for a cell; None stays SQL NULL."""
    if value is None:
        return None
    try:
        return json.dumps(value, default=_default, sort_keys=sort_keys, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConfigError(f"value cannot be stored as JSON: {exc}", hint="pass plain dicts, lists, "
                          "numbers and strings (no circular references)", value=repr(value)[:200]) from exc


def loads(text: str | None) -> Any:
    """The Python value of a JSON cell (None for NULL)."""
    return None if text is None else json.loads(text)


def canonical_key(params: Mapping[str, Any]) -> str:
    """Canonical JSON of a parameter dict (sorted keys, compact): the identity of a trial."""
    if not isinstance(params, Mapping):
        raise ConfigError("trial params must be a dict", hint="pass {'name': value, ...}",
                          value=repr(params)[:200])
    return dumps(dict(params), sort_keys=True)  # type: ignore[return-value]


def error_record(error: Any) -> Any:
    """An error as JSON-ready data: `QLMError.to_dict()`, a dict of type/message for other exceptions."""
    if error is None or isinstance(error, (dict, list, str)):
        return error if not isinstance(error, str) else {"message": error}
    if hasattr(error, "to_dict") and callable(error.to_dict):
        return error.to_dict()
    if isinstance(error, BaseException):
        return {"type": type(error).__name__, "message": str(error)}
    return {"message": str(error)}


def now_iso() -> str:
    """The current UTC time as ISO-8601 text with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def to_iso(value: Any, *, field: str = "time") -> str:
    """Normalize an epoch float, a datetime (naive = UTC) or ISO text to ISO-8601 UTC text."""
    if value is None:
        return now_iso()
    if isinstance(value, bool):
        raise ConfigError(f"{field} must be a time, not a bool", hint="pass epoch seconds, a datetime "
                          "or ISO-8601 text", field=field, value=value)
    try:
        if isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise ValueError("not finite")
            moment = datetime.fromtimestamp(float(value), UTC)
        elif isinstance(value, datetime):
            moment = value
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value)
        else:
            raise TypeError(type(value).__name__)
    except (ValueError, TypeError, OverflowError, OSError) as exc:
        raise ConfigError(f"{field} is not a valid time: {value!r}", hint="pass epoch seconds, a datetime "
                          "or ISO-8601 text", field=field, value=repr(value)) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def iso_to_epoch(text: str | None) -> float | None:
    """Epoch seconds of an ISO-8601 cell (None for NULL)."""
    return None if text is None else datetime.fromisoformat(text).timestamp()


def row_dict(row: sqlite3.Row | None, json_columns: Iterable[str] = ()) -> dict[str, Any] | None:
    """A plain dict of a row with its JSON columns decoded (None for no row)."""
    if row is None:
        return None
    out = dict(zip(row.keys(), row, strict=True))
    for name in json_columns:
        if name in out:
            out[name] = loads(out[name])
    return out


def rows_dicts(rows: Iterable[sqlite3.Row], json_columns: Iterable[str] = ()) -> list[dict[str, Any]]:
    """`row_dict` for many rows."""
    cols = tuple(json_columns)
    return [row_dict(r, cols) for r in rows]  # type: ignore[misc]


def require_text(value: Any, field: str, *, max_len: int = 512) -> str:
    """A non-empty string argument (ConfigError otherwise): names, kinds, topics."""
    if not isinstance(value, str) or not value or len(value) > max_len or "\x00" in value:
        raise ConfigError(f"{field} must be a non-empty string of at most {max_len} characters",
                          hint=f"pass a plain text {field}", field=field, value=repr(value)[:200])
    return value


def require_int(value: Any, field: str, *, minimum: int | None = 0, allow_none: bool = False) -> int | None:
    """An integer argument (bools refused), optionally None, at least `minimum`."""
    if value is None and allow_none:
        return None
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ConfigError(f"{field} must be an integer{bound}", hint=f"pass an int for {field}",
                          field=field, value=repr(value)[:200])
    return value
