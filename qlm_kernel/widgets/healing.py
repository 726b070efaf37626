"""`HealingTrace`: the self-healing session as a live timeline (error, thinking, diff, re-run, outcome)."""

from __future__ import annotations

from typing import Any

import traitlets as t

from qlm_kernel.errors import QLMError
from qlm_kernel.events import Event
from qlm_kernel.widgets.compact import compact
from qlm_kernel.widgets.live import STATIC, LiveWidget, stylesheet


class HealingTrace(LiveWidget):
    """One heal session step by step. ``session_id=None`` follows the next session anyone in the kernel
    starts (``qlm.heal`` in a cell, the MCP ``heal_strategy`` tool); `from_report` shows a finished one."""

    _esm = STATIC / "healing.js"
    _css = stylesheet("healing.css")

    session_id = t.Unicode("").tag(sync=True)
    strategy = t.Unicode("").tag(sync=True)
    status = t.Unicode("waiting").tag(sync=True)  # waiting | running | passed | healed | not_healed | ...
    healed = t.Bool(False).tag(sync=True)
    attempts = t.Int(0).tag(sync=True)
    max_attempts = t.Int(0).tag(sync=True)
    model_name = t.Unicode("").tag(sync=True)
    original_version = t.Int(None, allow_none=True).tag(sync=True)
    final_version = t.Int(None, allow_none=True).tag(sync=True)
    steps = t.List().tag(sync=True)

    def __init__(self, session_id: str | None = None, *, report: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._state: dict[str, Any] = _blank(session_id or "")
        if report is not None:
            self._load_report(report)
        else:
            if session_id:
                self._load_stored(session_id)
            self._listen("heal.*", self._on_heal_event)
        self.flush()

    @classmethod
    def from_report(cls, report: Any) -> HealingTrace:
        """A static trace of a finished `HealReport` (``rep = qlm.heal(...)``)."""
        return cls(report=report)

    def step_kinds(self) -> list[str]:
        """The kinds of the steps shown so far, in order."""
        return [s["kind"] for s in self.steps]

    # -- internals --------------------------------------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        return {**self._state, "steps": list(self._state["steps"])}

    def _on_heal_event(self, event: Event) -> bool | str:
        payload, s = event.payload, self._state
        session_id = str(payload.get("session_id") or "")
        if event.topic == "heal.started":
            if s["session_id"] and session_id != s["session_id"]:
                return False
            self._state = s = _blank(session_id)
            s.update(
                status="running",
                strategy=str(payload.get("strategy") or ""),
                max_attempts=int(payload.get("max_attempts") or 0),
                model_name=str(payload.get("model") or ""),
                original_version=_int(payload.get("version")),
            )
            return "now"
        if not session_id or session_id != s["session_id"]:
            return False
        if event.topic == "heal.step":
            s["steps"].append(_step({**payload, "kind": payload.get("kind") or payload.get("step")}))
            s["attempts"] = max(s["attempts"], int(payload.get("attempt") or 0))
            return True
        if event.topic == "heal.finished":
            s.update(
                status=str(payload.get("status") or "finished"),
                healed=bool(payload.get("healed")),
                attempts=int(payload.get("attempts") or s["attempts"]),
                final_version=_int(payload.get("final_version")),
            )
            return "now"
        return False

    def _load_report(self, report: Any) -> None:
        rep = report.to_dict() if hasattr(report, "to_dict") else dict(report)
        self._state.update(
            session_id=str(rep.get("session_id") or ""),
            original_version=_int(rep.get("original_version")),
            final_version=_int(rep.get("final_version")),
            **_session_fields(rep, default_status=""),
        )

    def _load_stored(self, session_id: str) -> None:
        """Start from the store when the session was recorded (running or finished)."""
        from qlm_kernel.session.history import get_heal_session

        try:
            rec = get_heal_session(session_id)
        except QLMError:  # not recorded (yet), or no readable store
            return
        if rec:
            self._state.update(**_session_fields(rec, default_status="running"))


def _session_fields(record: dict[str, Any], *, default_status: str) -> dict[str, Any]:
    """The widget state shared by a `HealReport.to_dict()` and a stored heal session with steps."""
    return {
        "strategy": str(record.get("strategy") or ""),
        "status": str(record.get("status") or default_status),
        "healed": bool(record.get("healed")),
        "attempts": int(record.get("attempts") or 0),
        "max_attempts": int(record.get("max_attempts") or 0),
        "model_name": str(record.get("model") or ""),
        "steps": [
            _step(step) for step in record.get("steps") or []
        ],
    }


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _step(step: dict[str, Any]) -> dict[str, Any]:
    """One heal step (a bus payload, a report step or a stored step) as the front end shows it."""
    ok = step.get("ok")
    return {
        "index": _int(step.get("index")),
        "attempt": _int(step.get("attempt")) or 0,
        "kind": str(step.get("kind") or ""),
        "ok": None if ok is None else bool(ok),
        "duration_s": compact(step.get("duration_s")),
        "data": compact(step.get("data") or {}, max_chars=6000),
    }


def _blank(session_id: str) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "strategy": "",
        "status": "waiting",
        "healed": False,
        "attempts": 0,
        "max_attempts": 0,
        "model_name": "",
        "original_version": None,
        "final_version": None,
        "steps": [],
    }
