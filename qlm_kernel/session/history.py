"""What the workspace remembers, as every front end reads it: heal sessions, versioned strategies and
the event log (the CLI's ``qlm events``/``qlm strategies history``, the sidebar, the widgets).

Reads never create the database: an empty workspace reads as empty lists.
"""

from __future__ import annotations

from typing import Any

from qlm_kernel.events.topics import validate_pattern
from qlm_kernel.home import PathLike
from qlm_kernel.jsonsafe import json_safe
from qlm_kernel.session.jobs import not_found
from qlm_kernel.session.limits import listing
from qlm_kernel.workspace import stores

MAX_EVENTS = 1000


def list_heal_sessions(limit: int = 30, *, home: PathLike | None = None) -> list[dict[str, Any]]:
    """The newest heal sessions first (without their steps)."""
    with stores.reading(home) as store:
        found = [] if store is None else store.list_heal_sessions(limit=listing(limit))
    return json_safe(found)


def get_heal_session(session_id: str, *, home: PathLike | None = None) -> dict[str, Any]:
    """One heal session with its steps in order (diffs in the ``patch`` steps); NOT_FOUND if unknown."""
    with stores.reading(home) as store:
        found = None if store is None else store.get_heal_session(str(session_id))
    if found is None:
        raise not_found("heal session", str(session_id), "list them with HealingTrace or the QLM sidebar")
    return json_safe(found)


def versioned_strategies(*, home: PathLike | None = None) -> list[dict[str, Any]]:
    """Every strategy with stored versions: name, version count, latest version."""
    with stores.reading(home) as store:
        return [] if store is None else json_safe(store.list_strategies())


def strategy_versions(name: str, *, home: PathLike | None = None) -> list[dict[str, Any]]:
    """All stored versions of one strategy, oldest first, without code."""
    with stores.reading(home) as store:
        return [] if store is None else json_safe(store.strategy_history(name))


def strategy_version(name: str, version: int | str = "latest", *, home: PathLike | None = None
                     ) -> dict[str, Any]:
    """One stored version of a strategy with its code (``version``: a number or ``"latest"``);
    NOT_FOUND naming the versions there are."""
    with stores.reading(home) as store:
        versions = [] if store is None else store.strategy_history(name)
        record = None
        if versions:
            number = versions[-1]["version"] if version == "latest" else int(version)
            record = store.get_strategy_version((name, number))
    if record is None:
        known = ", ".join(str(v["version"]) for v in versions) or "none recorded"
        raise not_found(f"version {version} of strategy", name, f"recorded versions: {known}",
                        strategy=name, version=str(version))
    return json_safe(record)


def tail_events(
    after_id: int | None = None,
    limit: int = 100,
    topics: list[str] | None = None,
    *,
    home: PathLike | None = None,
) -> dict[str, Any]:
    """Recorded events, oldest first: ``{"events": [...], "last_id": N}``.

    ``after_id`` None: the newest ``limit`` matching events; -1: none, just the newest id (where a
    follower starts); a number: the first ``limit`` matching events after it. ``last_id`` is the id
    to continue after: every event up to it was read (non-matching ones are skipped, not re-read).
    ``topics``: fnmatch patterns (``job.*``), any may match.
    """
    patterns = [validate_pattern(p) for p in topics] if topics else None
    limit = max(1, min(int(limit), MAX_EVENTS))
    with stores.reading(home) as store:
        if store is None:
            return {"events": [], "last_id": 0}
        head = store.last_event_id()  # read first: every event up to it is committed
        if after_id is None:
            events = _last_events(store, head, limit, patterns)
            last = head
        elif after_id < 0:
            events, last = [], head
        else:
            events = store.tail_events(after_id=after_id, limit=limit, topics=patterns)
            full = len(events) == limit
            last = events[-1]["id"] if full else max(head, after_id, *(e["id"] for e in events))
    return {"events": json_safe(events), "last_id": last}


def _collect(store: Any, after: int, upto: int, topics: list[str] | None) -> list[dict[str, Any]]:
    """Every event with ``after < id <= upto`` (matching ``topics``), fetched page by page."""
    found: list[dict[str, Any]] = []
    while True:
        batch = store.tail_events(after_id=after, limit=MAX_EVENTS, topics=topics)
        found += [e for e in batch if e["id"] <= upto]
        if len(batch) < MAX_EVENTS or batch[-1]["id"] >= upto:
            return found
        after = batch[-1]["id"]


def _last_events(store: Any, head: int, limit: int, topics: list[str] | None) -> list[dict[str, Any]]:
    """The newest ``limit`` matching events up to ``head`` (oldest first). Ids only grow, so they lie in a
    window below ``head``; with topic filters the window widens (x4) until it holds enough or reaches 0."""
    span = limit
    while True:
        start = max(0, head - span)
        found = _collect(store, start, head, topics)
        if len(found) >= limit or start == 0:
            return found[-limit:]
        span *= 4
