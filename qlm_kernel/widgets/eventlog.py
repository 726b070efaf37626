"""`EventLog`: the kernel's bus events as they happen, newest first, with a topic filter box."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import traitlets as t

from qlm_kernel.errors import ConfigError
from qlm_kernel.events import Event
from qlm_kernel.events.topics import validate_pattern
from qlm_kernel.widgets.compact import compact, one_line
from qlm_kernel.widgets.filters import topic_filter
from qlm_kernel.widgets.live import STATIC, LiveWidget, stylesheet


class EventLog(LiveWidget):
    """Live bus events matching ``pattern`` (fnmatch, e.g. ``"job.*"``), the newest ``max_events`` kept.

    The text box edits ``filter`` (see `qlm_kernel.widgets.filters`): it narrows what is shown
    without dropping anything kept; Clear empties the log.
    """

    _esm = STATIC / "eventlog.js"
    _css = stylesheet("eventlog.css")

    pattern = t.Unicode("*").tag(sync=True)
    filter = t.Unicode("").tag(sync=True)
    max_events = t.Int(200).tag(sync=True)
    received = t.Int(0).tag(sync=True)
    events = t.List().tag(sync=True)  # oldest first: {seq, time, topic, source, summary, payload}

    def __init__(self, pattern: str = "*", max_events: int = 200, *, filter: str = "", **kwargs: Any) -> None:
        validate_pattern(pattern)
        if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
            raise ConfigError(
                f"max_events must be a positive int, got {max_events!r}", hint="e.g. max_events=200"
            )
        super().__init__(pattern=pattern, max_events=max_events, filter=filter, **kwargs)
        self._rows: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._received = 0
        self._listen(pattern, self._on_event)
        self.on_msg(self._on_front_end_msg)

    def visible(self) -> list[dict[str, Any]]:
        """The kept events the current filter shows, oldest first (what the table lists)."""
        keep = topic_filter(self.filter)
        with self._state_lock:
            rows = list(self._rows)
        return [row for row in rows if keep(row["topic"])]

    def topics(self) -> list[str]:
        """The topics of the kept events, oldest first."""
        with self._state_lock:
            return [row["topic"] for row in self._rows]

    def clear(self) -> None:
        """Forget the kept events."""
        with self._state_lock:
            self._rows.clear()
        self.flush()

    # -- internals --------------------------------------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        return {"events": list(self._rows), "received": self._received}

    def _on_event(self, event: Event) -> bool:
        payload = compact(event.payload, max_chars=300, max_items=20, depth=3)
        self._rows.append(
            {
                "seq": event.seq,
                "time": event.time,
                "topic": event.topic,
                "source": event.source,
                "summary": one_line(event.payload),
                "payload": json.dumps(payload, indent=1, default=str)[:1500],
            }
        )
        self._received += 1
        return True

    def _on_front_end_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "clear":
            self.clear()
