"""The `Event` record every bus delivery carries, and the JSON coercion applied when it is stored or sent.

Events are immutable facts: subscribers in several threads share one instance, so the payload dict
is a private copy made at publish time and must be treated as read-only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """One published fact. ``seq`` is strictly increasing within the process (gaps mean another bus)."""

    seq: int
    topic: str
    payload: dict[str, Any]
    time: float
    source: str

    def __hash__(self) -> int:
        return hash((self.seq, self.topic))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (seq, topic, payload, time, source): the row the store and the MCP server see."""
        return {
            "seq": self.seq,
            "topic": self.topic,
            "payload": json_safe(self.payload),
            "time": self.time,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Event:
        """Rebuild an event from `to_dict()` output (e.g. a row read back from the store)."""
        return cls(
            seq=int(row["seq"]),
            topic=str(row["topic"]),
            payload=dict(row.get("payload") or {}),
            time=float(row["time"]),
            source=str(row.get("source") or ""),
        )


def json_safe(value: Any) -> Any:
    """Coerce ``value`` into plain JSON types: numpy scalars/arrays to Python, NaN/inf to None, else str."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    try:
        if hasattr(value, "tolist"):  # numpy arrays and scalars
            return json_safe(value.tolist())
        if hasattr(value, "item"):
            return json_safe(value.item())
        if hasattr(value, "isoformat"):  # datetime, date, pandas Timestamp
            return value.isoformat()
        return str(value)
    except Exception:  # a payload value whose conversion fails must not break the recorder
        return repr(value)
