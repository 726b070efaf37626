"""`HealReport` and `HealStep`: what one heal session did, step by step, JSON-safe and printable."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from qlm_kernel.jsonsafe import json_safe

STEP_KINDS = ("run", "diagnose", "prompt", "thinking", "reply", "refused", "patch", "verify", "rollback",
              "finished")


@dataclass
class HealStep:
    """One step: ``index`` (0, 1, ...), ``attempt`` (0 = before any model call), ``kind`` (one of
    `STEP_KINDS`), ``started``/``ended`` (epoch seconds), ``ok`` (None when not a check), ``data``
    (prompt, reply, diff, error trace, stats, version, ... depending on the kind)."""

    index: int
    attempt: int
    kind: str
    started: float
    ended: float
    ok: bool | None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """Seconds the step took."""
        return max(0.0, self.ended - self.started)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record of the step."""
        return json_safe({"index": self.index, "attempt": self.attempt, "kind": self.kind,
                          "started": self.started, "ended": self.ended, "duration_s": self.duration_s,
                          "ok": self.ok, "data": self.data}, nonfinite="text")


@dataclass
class HealReport:
    """The outcome of `qlm.heal`.

    ``healed``: the strategy passes at the end (True also when it passed from the start, status
    "passed"). ``status``: passed | healed | not_healed (rolled back) | diagnosed (no model) | error.
    ``attempts``: model attempts used. ``original_version`` / ``final_version``: version numbers in
    the store (``*_version_id`` their ids); ``diagnosis``: the first failure's trace; ``error``: with
    status "error", the `QLMError` record that stopped the heal (e.g. ``FILE_CHANGED``, ``INTERNAL``).
    """

    session_id: str | None
    strategy: str
    path: str
    status: str = "running"
    healed: bool = False
    attempts: int = 0
    max_attempts: int = 0
    model: str | None = None
    steps: list[HealStep] = field(default_factory=list)
    original_version: int | None = None
    original_version_id: int | None = None
    final_version: int | None = None
    final_version_id: int | None = None
    diagnosis: dict[str, Any] | None = None
    final_stats: dict[str, Any] | None = None
    record_error: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def steps_of(self, kind: str) -> list[HealStep]:
        """The steps of one kind, in order (e.g. ``rep.steps_of("patch")``)."""
        return [s for s in self.steps if s.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record of the whole session."""
        return json_safe({
            "session_id": self.session_id, "strategy": self.strategy, "path": self.path,
            "status": self.status, "healed": self.healed, "attempts": self.attempts,
            "max_attempts": self.max_attempts, "model": self.model,
            "original_version": self.original_version, "original_version_id": self.original_version_id,
            "final_version": self.final_version, "final_version_id": self.final_version_id,
            "diagnosis": self.diagnosis, "final_stats": self.final_stats, "record_error": self.record_error,
            "error": self.error, "steps": [s.to_dict() for s in self.steps],
        }, nonfinite="text")

    def __repr__(self) -> str:
        return (f"HealReport(strategy={self.strategy!r}, status={self.status!r}, healed={self.healed}, "
                f"attempts={self.attempts}/{self.max_attempts}, steps={len(self.steps)}, "
                f"versions={self.original_version}->{self.final_version}, session_id={self.session_id!r})")

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.healed else "#cf222e"
        err = self.error or {}
        error = (f" &mdash; {html.escape(str(err.get('code')))}: {html.escape(str(err.get('message')))}"
                 if err else "")
        rows = "".join(
            f"<tr><td>{s.index}</td><td>{s.attempt}</td><td>{s.kind}</td>"
            f"<td>{'' if s.ok is None else ('ok' if s.ok else 'failed')}</td>"
            f"<td>{s.duration_s:.3f} s</td><td>{html.escape(_step_summary(s))}</td></tr>"
            for s in self.steps)
        return (f"<div><b>heal {html.escape(self.strategy)}</b>: "
                f"<span style='color:{colour}'>{html.escape(self.status)}</span> after {self.attempts} "
                f"attempt(s); version {self.original_version} &rarr; {self.final_version}{error}"
                "<table><tr><th>#</th><th>attempt</th><th>step</th><th>result</th><th>time</th>"
                f"<th>detail</th></tr>{rows}</table></div>")


def _step_summary(step: HealStep) -> str:
    data = step.data
    error = data.get("error")
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"[:200]
    if "version" in data:
        return f"version {data['version']}"
    if "stats" in data and isinstance(data["stats"], dict):
        return f"n_trades={data['stats'].get('n_trades')}, sharpe={data['stats'].get('sharpe')}"
    for key in ("text", "reply", "prompt"):
        if isinstance(data.get(key), str):
            return data[key][:120].replace("\n", " ")
    return ""
