"""Keep what widgets send to the browser small: long strings cut, deep or wide structures trimmed."""

from __future__ import annotations

import math
from typing import Any

from qlm_kernel.jsonsafe import json_safe


def compact(value: Any, *, max_chars: int = 4000, max_items: int = 50, depth: int = 4) -> Any:
    """A JSON-safe copy of ``value`` with strings over ``max_chars`` cut and containers trimmed."""
    value = json_safe(value, nonfinite="text")
    return _trim(value, max_chars, max_items, depth)


def _trim(value: Any, max_chars: int, max_items: int, depth: int) -> Any:
    if isinstance(value, str):
        if len(value) <= max_chars:
            return value
        return value[:max_chars] + f"\n… ({len(value) - max_chars} more characters)"
    if isinstance(value, dict):
        if depth <= 0:
            return "{…}"
        items = list(value.items())
        out = {str(k): _trim(v, max_chars, max_items, depth - 1) for k, v in items[:max_items]}
        if len(items) > max_items:
            out["…"] = f"{len(items) - max_items} more keys"
        return out
    if isinstance(value, list):
        if depth <= 0:
            return "[…]"
        out_list = [_trim(v, max_chars, max_items, depth - 1) for v in value[:max_items]]
        if len(value) > max_items:
            out_list.append(f"… {len(value) - max_items} more items")
        return out_list
    return value


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when missing or not finite (JSON has no NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def one_line(payload: dict[str, Any], max_chars: int = 240) -> str:
    """A short ``key=value, ...`` summary of an event payload for log rows."""
    parts = []
    for key, value in payload.items():
        text = value if isinstance(value, str) else repr(compact(value, max_chars=60, max_items=6, depth=2))
        parts.append(f"{key}={text}")
    line = ", ".join(parts).replace("\n", " ")
    return line if len(line) <= max_chars else line[: max_chars - 1] + "…"
