"""The `Event` record every bus delivery carries, and the JSON coercion applied when it is stored or sent.

Events are immutable facts: subscribers in several threads share one instance, so the payload dict
is a private copy made at publish time and must be treated as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qlm_kernel.jsonsafe import json_safe


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
