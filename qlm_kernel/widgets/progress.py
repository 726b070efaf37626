"""`OptimizationProgress`: a live view of one optimization job, with a Cancel button that stops it."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

import traitlets as t

from qlm_kernel.errors import ConfigError
from qlm_kernel.events import Event
from qlm_kernel.widgets.compact import compact, finite
from qlm_kernel.widgets.live import STATIC, LiveWidget, stylesheet

MAX_HISTORY = 400  # points kept for the best-objective chart (thinned evenly beyond that)
TERMINAL = {"job.finished": "done", "job.cancelled": "cancelled", "job.failed": "failed"}
"""The final status per topic; a ``job.failed`` whose payload says ``status: "abandoned"`` (its process
died, see `qlm_kernel.session.jobs.reap_jobs`) shows as abandoned."""


class OptimizationProgress(LiveWidget):
    """Progress bar, trials done/total, rate, ETA, best params and objective, a best-so-far chart
    and Cancel. ``job_id=None`` follows the next job anyone in the kernel starts (the notebook, an
    MCP assistant, a background thread); ``follow="all"`` keeps switching to each newer job."""

    _esm = STATIC / "progress.js"
    _css = stylesheet("progress.css")

    job_id = t.Unicode("").tag(sync=True)
    status = t.Unicode("waiting").tag(sync=True)  # waiting|running|cancelling|done|cancelled|failed|abandoned
    kind = t.Unicode("").tag(sync=True)
    strategy = t.Unicode("").tag(sync=True)
    objective = t.Unicode("").tag(sync=True)
    done = t.Int(0).tag(sync=True)
    total = t.Int(0).tag(sync=True)
    rate = t.Float(None, allow_none=True).tag(sync=True)
    eta_s = t.Float(None, allow_none=True).tag(sync=True)
    elapsed_s = t.Float(None, allow_none=True).tag(sync=True)
    best_value = t.Float(None, allow_none=True).tag(sync=True)
    best_params = t.Dict(allow_none=True, default_value=None).tag(sync=True)
    history = t.List().tag(sync=True)  # [[done, best_value], ...]
    error = t.Dict(allow_none=True, default_value=None).tag(sync=True)

    def __init__(self, job_id: str | None = None, *, follow: str = "next", **kwargs: Any) -> None:
        if follow not in ("next", "all"):
            raise ConfigError(
                f"follow must be 'next' or 'all', got {follow!r}",
                hint="'next' sticks to the first job seen; 'all' switches to every new job",
            )
        super().__init__(**kwargs)
        self.follow = follow
        self.future: Future[Any] | None = None
        self._state: dict[str, Any] = _blank(job_id or "")
        if job_id:
            self._load_stored(job_id)
        self._listen("job.*", self._on_job_event)
        self.on_msg(self._on_front_end_msg)
        self.flush()

    # -- public -----------------------------------------------------------------------------------
    @property
    def percent(self) -> float:
        """Trials done as a percentage of the total (0 when the total is unknown)."""
        return 100.0 * self.done / self.total if self.total else 0.0

    def cancel(self) -> bool:
        """Ask the followed job to stop after its current batch (what the Cancel button does)."""
        job_id = self._state["job_id"]
        if not job_id or self._state["status"] not in ("running", "waiting"):
            return False
        from qlm_kernel.errors import QLMError
        from qlm_kernel.session import cancel_job

        try:
            taken = bool(cancel_job(job_id)["cancel_requested"])
        except QLMError:  # unknown or already finished: nothing to cancel
            taken = False
        with self._state_lock:
            if taken and self._state["status"] == "running":
                self._state["status"] = "cancelling"
        self.flush()
        return taken

    @classmethod
    def start(cls, strategy: Any, data: Any = None, space: Any = None, **kwargs: Any) -> OptimizationProgress:
        """Run ``qlm.optimize(strategy, data, space, **kwargs)`` in a background thread and return a
        widget following it; the kernel stays free, so Cancel works. ``widget.result()`` waits."""
        from qlm_kernel.session import optimize

        widget = cls()
        future: Future[Any] = Future()
        widget.future = future

        def run() -> None:
            try:
                future.set_result(optimize(strategy, data, space, **kwargs))
            except BaseException as exc:  # handed to result(); the widget shows job.failed itself
                future.set_exception(exc)

        threading.Thread(target=run, name="qlm-widget-optimize", daemon=True).start()
        return widget

    def result(self, timeout: float | None = None) -> Any:
        """The `OptimizationResult` of a job launched with `start` (raises its error if it failed)."""
        if self.future is None:
            raise ConfigError("this widget did not launch a job", hint="use OptimizationProgress.start(...)")
        return self.future.result(timeout)

    # -- internals --------------------------------------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        s = self._state
        return {**{k: s[k] for k in s if k != "history"}, "history": [list(p) for p in s["history"]]}

    def _on_job_event(self, event: Event) -> bool | str:
        payload = event.payload
        job_id = str(payload.get("job_id") or "")
        s = self._state
        if event.topic == "job.created":
            if job_id != s["job_id"]:
                if s["job_id"] and self.follow == "next":
                    return False  # bound to another job
                self._state = s = _blank(job_id)
            s.update(
                status="running",
                kind=str(payload.get("kind") or ""),
                strategy=str(payload.get("strategy") or ""),
                objective=str(payload.get("objective") or ""),
                total=int(payload.get("total") or 0),
            )
            return "now"
        if not job_id or job_id != s["job_id"]:
            return False
        self._apply_progress(payload)
        if event.topic in TERMINAL:
            s["status"] = "abandoned" if payload.get("status") == "abandoned" else TERMINAL[event.topic]
            if event.topic == "job.failed":
                s["error"] = compact(payload.get("error") or {})
            return "now"
        if event.topic == "job.progress" and s["status"] == "waiting":
            s["status"] = "running"
        return True

    def _apply_progress(self, payload: dict[str, Any]) -> None:
        s = self._state
        if "done" in payload:
            s["done"] = int(payload.get("done") or 0)
        if payload.get("total"):
            s["total"] = int(payload["total"])
        for key in ("rate", "eta_s", "elapsed_s"):
            if key in payload:
                s[key] = finite(payload.get(key))
        value = finite(payload.get("best_value"))
        if value is not None:
            s["best_value"] = value
            s["best_params"] = compact(payload.get("best_params") or {}, max_chars=200)
            point = (s["done"], value)
            if not s["history"] or s["history"][-1] != point:
                s["history"].append(point)
                if len(s["history"]) > MAX_HISTORY:  # thin evenly, keep the newest point
                    s["history"] = s["history"][::2]
                    if s["history"][-1] != point:
                        s["history"].append(point)

    def _load_stored(self, job_id: str) -> None:
        """Start from the store's row when the job was recorded (it may be running or finished)."""
        from qlm_kernel.errors import QLMError
        from qlm_kernel.session import get_job

        try:
            view = get_job(job_id, trials=0)
        except QLMError:
            return
        if not view.get("recorded"):
            return
        best = view.get("best") or {}
        status = str(view.get("status") or "")
        self._state.update(
            status={"pending": "waiting"}.get(status, status) or "waiting",
            kind=str(view.get("method") or view.get("kind") or ""),
            total=int(view.get("total") or 0),
            done=int(view.get("done") or 0),
            best_value=finite(best.get("value")),
            best_params=compact(best.get("params")),
            objective=str(view.get("objective") or ""),
            strategy=str(view.get("strategy") or ""),
        )
        if self._state["best_value"] is not None:
            self._state["history"].append((self._state["done"], self._state["best_value"]))

    def _on_front_end_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "cancel":
            self.cancel()


def _blank(job_id: str) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": "waiting",
        "kind": "",
        "strategy": "",
        "objective": "",
        "done": 0,
        "total": 0,
        "rate": None,
        "eta_s": None,
        "elapsed_s": None,
        "best_value": None,
        "best_params": None,
        "history": [],
        "error": None,
    }
