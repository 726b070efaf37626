"""One conversion to plain JSON values, shared by errors, results, reports, events and the CLI.

Recursively: mappings -> dicts with str keys, sequences/sets/numpy arrays -> lists, numpy scalars ->
Python numbers, datetimes/Timestamps -> ISO text (NaT -> None), non-finite floats -> None (or their
text with ``nonfinite="text"``, which errors use to keep "nan"/"inf" visible), anything else -> str.
Standard library only, so importing it stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def json_safe(value: Any, *, nonfinite: str = "null") -> Any:
    """``value`` as JSON-serializable Python values (see the module docstring)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return None if nonfinite == "null" else str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, nonfinite=nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v, nonfinite=nonfinite) for v in value]
    if type(value).__name__ == "NaTType":
        return None
    try:
        if hasattr(value, "tolist"):  # numpy arrays and scalars
            return json_safe(value.tolist(), nonfinite=nonfinite)
        if hasattr(value, "item"):
            return json_safe(value.item(), nonfinite=nonfinite)
        if hasattr(value, "isoformat"):  # datetime, date, pandas Timestamp
            return value.isoformat()
        return str(value)
    except Exception:  # a value whose conversion fails must not break a report or the recorder
        return repr(value)
