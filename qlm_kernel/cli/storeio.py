"""How the store commands (``runs``, ``jobs``, ``events``, ``strategies history``) reach the database.

Read commands open ``<QLM_HOME>/qlm.db`` read-only and only if it exists, so looking never creates,
migrates or locks anything; a missing database reads as an empty workspace. Also: JSON-safe values
(the store keeps NaN/Infinity, strict JSON does not) and the short human formats shared by the tables.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from qlm_kernel.jsonsafe import json_safe

NONE = "-"  # what an absent value looks like in a human table


def db_path() -> Path:
    """``<QLM_HOME>/qlm.db``, without creating a missing workspace (`qlm_kernel.home`'s rule)."""
    from qlm_kernel.home import DB_FILENAME, home_path

    return home_path() / DB_FILENAME


# --- values -----------------------------------------------------------------------------------------


def compact(value: Any, width: int | None = None) -> str:
    """One-line JSON of `value` (``,``/``:`` without spaces), cut to `width` characters with ``…``."""
    text = json.dumps(json_safe(value), separators=(",", ":"), default=str, ensure_ascii=False)
    if width is not None and len(text) > width:
        return text[: max(0, width - 1)] + "…"
    return text


def short(text: Any, n: int = 8) -> str:
    """The first `n` characters of an id, hash or fingerprint (``-`` when absent)."""
    return NONE if text in (None, "") else str(text)[:n]


def fmt_time(iso: Any, *, millis: bool = False) -> str:
    """``2024-05-01 12:34:56`` (UTC, as stored) from an ISO-8601 cell; ``.123`` added with `millis`."""
    if not iso:
        return NONE
    text = str(iso).replace("T", " ")
    return text[:23] if millis else text[:19]


def fmt_duration(value: Any) -> str:
    """``0.012s``, ``12.3s`` or ``4m05s``: short enough for a table column."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return NONE
    if value < 10:
        return f"{value:.3f}s"
    if value < 60:
        return f"{value:.1f}s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes}m{rest:02d}s"


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (ids, versions)."""
    return _bounded(text, int, 1, "an integer >= 1")


def count(text: str) -> int:
    """argparse type: an integer >= 0 (limits)."""
    return _bounded(text, int, 0, "an integer >= 0")


def seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0 (intervals, timeouts)."""
    value = _bounded(text, float, 0, "a number of seconds > 0")
    if value == 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _bounded(text: str, kind: type, minimum: float, expected: str) -> Any:
    """Parse `text` as `kind` and check it is at least `minimum` (argparse reports the message)."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value
