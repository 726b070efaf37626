"""The persistent event log: an append-only table whose ids strictly increase, tailed by readers.

The in-memory bus (`qlm_kernel.events`) publishes; a store subscriber appends batches here so other
processes (the CLI, a stand-alone MCP server) can follow with `tail_events(after_id=...)`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from qlm_kernel.errors import ConfigError
from qlm_kernel.store import codec
from qlm_kernel.store.base import StoreBase

_LAST_ID = "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)"


def _event_row(row: Mapping[str, Any]) -> tuple[Any, ...]:
    if not isinstance(row, Mapping):
        raise ConfigError("each event is a dict with topic, payload, source, time", hint="e.g. "
                          "{'topic': 'job.progress', 'payload': {...}}", value=repr(row)[:200])
    topic = codec.require_text(row.get("topic"), "event topic", max_len=256)
    source = row.get("source")
    source = None if source is None else codec.require_text(source, "event source", max_len=256)
    return topic, codec.dumps(row.get("payload")), source, codec.to_iso(row.get("time"), field="event time")


def _patterns(topics: str | Iterable[str] | None) -> list[str]:
    if topics is None:
        return []
    items = [topics] if isinstance(topics, str) else list(topics)
    return [codec.require_text(t, "topic pattern", max_len=256) for t in items]


def _event_dict(row: sqlite3.Row) -> dict[str, Any]:
    event = codec.row_dict(row, ("payload",))
    event["time"] = codec.iso_to_epoch(event["created_at"])  # type: ignore[index]
    return event  # type: ignore[return-value]


class EventsMixin(StoreBase):
    """`append_events`, `tail_events`, `last_event_id`, `prune_events`."""

    def append_events(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append events (topic, payload, source, time: epoch/datetime/ISO, default now) in one
        transaction; returns the id of the last one (the current last id when `rows` is empty)."""
        batch = [_event_row(row) for row in rows]
        if not batch:
            return self.last_event_id()

        def insert(conn: sqlite3.Connection) -> int:
            conn.executemany("INSERT INTO events (topic, payload, source, created_at) VALUES (?, ?, ?, ?)",
                             batch)
            return int(conn.execute(_LAST_ID).fetchone()[0])

        return self._write("append events", insert)

    def tail_events(self, after_id: int = 0, limit: int = 1000,
                    topics: str | Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Events with id > `after_id`, oldest first; `topics` are fnmatch-style patterns ("job.*").

        Each event: id, topic, payload, source, created_at (ISO) and time (epoch seconds). Patterns use
        SQLite GLOB, which matches like `fnmatch.fnmatchcase` (``*``, ``?``, ``[...]``; case-sensitive).
        """
        after = codec.require_int(after_id, "after_id")
        limit = codec.require_int(limit, "limit")  # type: ignore[assignment]
        patterns = _patterns(topics)
        where = "id > ?"
        if patterns:
            where += " AND (" + " OR ".join("topic GLOB ?" for _ in patterns) + ")"
        sql = f"SELECT id, topic, payload, source, created_at FROM events WHERE {where} ORDER BY id LIMIT ?"
        return self._read("tail events", lambda c: [_event_dict(r) for r in c.execute(
            sql, (after, *patterns, limit))])

    def last_event_id(self) -> int:
        """The id of the newest event ever appended (0 if none); ids are never reused, even after pruning."""
        return self._read("last event id", lambda c: int(c.execute(_LAST_ID).fetchone()[0]))

    def prune_events(self, keep_last: int) -> int:
        """Delete all but the newest `keep_last` events; returns how many were deleted."""
        keep = codec.require_int(keep_last, "keep_last")

        def prune(conn: sqlite3.Connection) -> int:
            if keep == 0:
                return conn.execute("DELETE FROM events").rowcount
            row = conn.execute("SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?",
                               (keep - 1,)).fetchone()
            if row is None:
                return 0
            return conn.execute("DELETE FROM events WHERE id < ?", (row[0],)).rowcount

        return self._write("prune events", prune)
