"""Publish every heal step on the bus (``heal.*``) and store it (heal sessions and steps) as it happens.

Every payload carries ``session_id``. Each step goes out as ``heal.step``; a model's reasoning also as
``heal.thinking``, a saved patch also as ``heal.patch``. Storing is best effort like run recording: a
store failure is kept on the report (``record_error``) and published as ``system.error``; the heal
itself (and the file's versions, which are written separately) go on.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from qlm_kernel.errors import QLMError
from qlm_kernel.events import publish
from qlm_kernel.events.topics import (
    HEAL_FINISHED,
    HEAL_PATCH,
    HEAL_STARTED,
    HEAL_STEP,
    HEAL_THINKING,
    SYSTEM_ERROR,
)
from qlm_kernel.healing.report import HealReport, HealStep
from qlm_kernel.jsonsafe import json_safe

log = logging.getLogger("qlm_kernel.healing")


class HealRecorder:
    """Turns loop events into `HealStep`s on the report, bus events and store rows."""

    def __init__(self, report: HealReport) -> None:
        self.report = report
        self._stored = False

    @property
    def session_id(self) -> str:
        """The session's id (the store's, or a local one when the store could not be written)."""
        return self.report.session_id or ""

    def start(self, config: dict[str, Any]) -> None:
        """Create the stored session and publish ``heal.started``."""
        rep = self.report
        try:
            from qlm_kernel.store import default_store

            rep.session_id = default_store().create_heal_session(
                rep.strategy, max_attempts=rep.max_attempts, path=rep.path, model=rep.model,
                original_version_id=rep.original_version_id, config=json_safe(config))
            self._stored = True
        except QLMError as err:
            rep.session_id = uuid.uuid4().hex[:12]
            self._store_failed("create_heal_session", err)
        publish(HEAL_STARTED, {"session_id": rep.session_id, "strategy": rep.strategy, "path": rep.path,
                               "version": rep.original_version, "version_id": rep.original_version_id,
                               "max_attempts": rep.max_attempts, "model": rep.model,
                               "config": json_safe(config)}, source="heal")

    def step(self, kind: str, attempt: int, started: float, *, ok: bool | None = None,
             data: dict[str, Any] | None = None, version_id: int | None = None) -> HealStep:
        """Record one finished step (``started``: its epoch start time; it ends now)."""
        step = HealStep(index=len(self.report.steps), attempt=attempt, kind=kind, started=started,
                        ended=time.time(), ok=ok, data=json_safe(data or {}, nonfinite="text"))
        self.report.steps.append(step)
        base = {"session_id": self.session_id, "strategy": self.report.strategy, "attempt": attempt}
        payload = {**base, "index": step.index, "step": kind, "kind": kind, "ok": ok,
                   "duration_s": step.duration_s, "data": step.data}
        if "error" in step.data:
            payload["trace"] = step.data["error"]
        publish(HEAL_STEP, payload, source="heal")
        if kind == "thinking":
            publish(HEAL_THINKING, {**base, "text": step.data.get("text", "")}, source="heal")
        elif kind == "patch":
            publish(HEAL_PATCH, {**base, "diff": step.data.get("diff", ""),
                                 "version": step.data.get("version"), "version_id": version_id},
                    source="heal")
        if self._stored:
            try:
                from qlm_kernel.store import default_store

                default_store().add_heal_step(self.session_id, index=step.index, attempt=attempt, kind=kind,
                                              ok=ok, started_at=step.started, ended_at=step.ended,
                                              data=step.data, strategy_version_id=version_id)
            except QLMError as err:
                self._store_failed("add_heal_step", err)
        return step

    def finish(self, error: BaseException | None = None) -> None:
        """Store the outcome and publish ``heal.finished``."""
        rep = self.report
        if self._stored:
            try:
                from qlm_kernel.store import default_store

                default_store().finish_heal_session(
                    self.session_id, rep.status, healed=rep.healed, attempts=rep.attempts,
                    final_version_id=rep.final_version_id, diagnosis=rep.diagnosis, error=error)
            except QLMError as err:
                self._store_failed("finish_heal_session", err)
        publish(HEAL_FINISHED, {"session_id": self.session_id, "strategy": rep.strategy, "status": rep.status,
                                "healed": rep.healed, "attempts": rep.attempts,
                                "original_version": rep.original_version, "final_version": rep.final_version,
                                "final_version_id": rep.final_version_id}, source="heal")

    def _store_failed(self, where: str, err: QLMError) -> None:
        log.warning("heal session not fully stored: %s", err)
        self.report.record_error = err.to_dict()
        publish(SYSTEM_ERROR, {"where": f"store.{where}", "session_id": self.report.session_id,
                               "error": err.to_dict()}, source="heal")
