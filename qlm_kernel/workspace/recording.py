"""Persist what the kernel does: runs into the store, bus events into the store's event log.

Recording is best effort by design: a store failure (read-only or full disk, corrupt file) never
loses the backtest result the user already has; it is attached to the result and published as
``system.error`` instead.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any

from qlm_kernel.errors import QLMError

log = logging.getLogger("qlm_kernel.workspace")

_recorder_lock = threading.Lock()
_recorder: Any = None
_recorder_home: str | None = None
_recorder_sink: _WorkspaceEventSink | None = None


def recording_enabled(record: bool | None) -> bool:
    """Explicit ``record=`` wins; otherwise on unless the environment says QLM_RECORD_RUNS=0."""
    if record is not None:
        return bool(record)
    return os.environ.get("QLM_RECORD_RUNS", "1").strip().lower() not in {"0", "false", "no", "off"}


class _WorkspaceEventSink:
    """The event writer's sink for one workspace's database. While the shared store serves that file
    it writes there, resolved at each write: bound to one Store object, the writer failed for its whole
    retry window and then dropped the events once ``close_default_store()`` had closed that object.
    Once ``QLM_HOME`` points elsewhere it writes through a store of its own on its file, so a batch
    flushed late still lands in the workspace it was recorded for (and never closes the shared store
    that now serves another workspace)."""

    def __init__(self, path: Any) -> None:
        self.path = path
        self._own: Any = None

    def __call__(self, events: Any) -> Any:
        from qlm_kernel.store import Store, default_path, default_store

        if default_path().resolve() == self.path:
            return default_store().append_events(events)
        if self._own is None or self._own.closed:
            self._own = Store(self.path)
        return self._own.append_events(events)

    def close(self) -> None:
        if self._own is not None:
            self._own.close()
            self._own = None


def ensure_event_recorder() -> Any:
    """Start (once per workspace) the background writer persisting every bus event in the store.

    Returns the recorder, or None when the store cannot be opened (the error is logged; the run's
    own record attempt reports it on the result), and None in a worker process: a worker's events go
    to its parent, which republishes and records them (recording them here too would store each twice).
    """
    global _recorder, _recorder_home, _recorder_sink
    from qlm_kernel.events import EventRecorder, get_bus
    from qlm_kernel.home import qlm_home
    from qlm_kernel.isolation import in_worker
    from qlm_kernel.store import default_store

    if in_worker():
        return None

    home = str(qlm_home())
    with _recorder_lock:
        if _recorder is not None and _recorder_home == home:
            return _recorder
        _close_recorder()
        try:
            store = default_store()
        except QLMError as err:  # events stay on the bus; the run's own record reports the problem
            log.warning("events are not persisted: %s", err)
            return None
        _recorder_sink = _WorkspaceEventSink(store.path)
        _recorder = EventRecorder(get_bus(), _recorder_sink, name="store")
        _recorder_home = home
        return _recorder


def _close_recorder() -> None:
    """Flush and stop the writer, then close its sink (under ``_recorder_lock``)."""
    global _recorder, _recorder_home, _recorder_sink
    try:
        if _recorder is not None:
            _recorder.close()
    finally:
        if _recorder_sink is not None:
            _recorder_sink.close()
        _recorder, _recorder_home, _recorder_sink = None, None, None


def stop_event_recorder() -> None:
    """Flush and stop the event writer (at exit, or when a test switches workspaces)."""
    with _recorder_lock:
        try:
            _close_recorder()
        except Exception:  # pragma: no cover - shutting down; never raise at exit
            log.exception("event recorder did not close cleanly")


atexit.register(stop_event_recorder)


def record_run(fields: dict[str, Any]) -> tuple[int | None, dict[str, Any] | None]:
    """Write one run; returns (run id, None) or (None, the storage error as a dict)."""
    from qlm_kernel.events import publish
    from qlm_kernel.store import default_store

    try:
        run_id = default_store().record_run(**fields, count_trial=True)  # one transaction: run + ledger
    except QLMError as err:
        log.warning("run not recorded: %s", err)
        publish("system.error", {"where": "store.record_run", "error": err.to_dict()})
        return None, err.to_dict()
    publish(
        "store.run.recorded",
        {"run_id": run_id, "strategy": fields.get("strategy"), "status": fields.get("status", "ok")},
    )
    return run_id, None


def note_trials(strategy: str, data_fingerprint: str, variants: list[dict[str, Any]], *, source: str,
                code: str | None = None, store: Any = None) -> dict[str, Any] | None:
    """Count evaluated variants in the trial ledger (`qlm_kernel.store.ledger`); best effort like every
    record: a store failure is logged and published, never raised. Returns the family's count."""
    from qlm_kernel.events import publish
    from qlm_kernel.store import default_store

    if not variants:
        return None
    try:
        return (store or default_store()).note_trials(strategy, data_fingerprint, variants, source=source,
                                                       code=code)
    except QLMError as err:
        log.warning("trials not counted in the ledger: %s", err)
        publish("system.error", {"where": "store.note_trials", "error": err.to_dict()})
        return None
