"""`heal()`: run -> diagnose -> ask the model -> validate -> save a version -> re-run, until it passes.

If the attempts run out (or anything interrupts the loop) after the file was changed, the original
code is written back as a new version, so the file ends as it started and every attempt stays in
the history. See `heal` for the rules.

Robustness: a heal holds its strategy's lock (`qlm_kernel.healing.lock`) from start to finish; every
write and the rollback are compare-and-swap on the file's sha256; whatever is raised inside the loop
becomes a recorded step (`qlm_kernel.healing.guard` says how), except the user's Ctrl-C, which rolls
back and then propagates; sessions left ``running`` by a killed process are rolled back by
`qlm_kernel.healing.recovery` (also at the start of the next heal of that strategy).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from qlm_kernel.errors import ConfigError, QLMError
from qlm_kernel.healing import target as files
from qlm_kernel.healing.diffs import apply_unified_diff, make_diff
from qlm_kernel.healing.guard import as_error, propagates
from qlm_kernel.healing.lock import heal_lock, owner_info
from qlm_kernel.healing.policy import check_candidate, class_names
from qlm_kernel.healing.prompt import build_prompt, format_trace
from qlm_kernel.healing.recorder import HealRecorder
from qlm_kernel.healing.reply import extract_proposal, normalize_reply
from qlm_kernel.healing.report import HealReport
from qlm_kernel.healing.runner import RunOutcome, run_once
from qlm_kernel.strategy.timelimit import check_limit

Model = Callable[[str], Any]
"""A model: ``model(prompt) -> str | dict | object`` (see `qlm_kernel.healing.reply` for what is read)."""


def heal(
    strategy: Any,
    data: Any = None,
    *,
    model: Model | None = None,
    max_attempts: int = 3,
    time_limit: float | None = 10.0,
    require_trades: bool = True,
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    model_name: str | None = None,
    record: bool | None = None,
    source: str = "python",
    workspace_only: bool = False,
    **kwargs: Any,
) -> HealReport:
    """Repair a failing strategy file with a model; returns a `HealReport`.

    ``strategy``: a workspace name (``"broken"`` / ``"broken.py"`` -> ``<QLM_HOME>/strategies/broken.py``)
    or an explicit path to a ``.py`` file (which may lie outside the workspace: the caller chose it).
    Only that one file is ever written; ``workspace_only=True`` (for front ends serving assistants, e.g.
    the MCP tool) refuses any path outside ``<QLM_HOME>/strategies``. ``data`` / ``dataset=`` /
    ``sample=`` as in ``qlm.backtest``; other keyword arguments are strategy parameters and backtest
    settings. ``model_name`` labels the model in the report and store; ``source`` labels the runs
    (``"python"``, ``"mcp"``, ...); ``record`` as in ``qlm.backtest``.

    ``model``: a callable ``prompt -> reply`` (a str, or a dict/object with ``text`` and optional
    ``thinking``), called synchronously on the thread that called ``heal`` — to bridge to async
    (MCP sampling), run ``heal`` in a worker thread and block inside the callable (e.g.
    ``anyio.from_thread.run`` or ``asyncio.run_coroutine_threadsafe(...).result()``). A callable that
    raises counts as a failed attempt. ``model=None`` only diagnoses (status "diagnosed").

    Loop: record the file as a version (author "user") -> run -> on failure, build a prompt (trace +
    full source + API summary + rules) -> reply -> accept a fenced python file, bare code or a
    unified diff -> validate (`qlm_kernel.healing.policy`: parses, same Strategy class, imports from
    ``ALLOWED_IMPORTS`` only, no file/process/dynamic-code access, only this file named) -> save as a
    new version (author "healer") -> re-run; a refused reply counts as an attempt and its reason goes
    into the next prompt. A run passes when the backtest completes and, with ``require_trades``,
    trades at least once (else a warning-level "no trades" diagnosis is the trace). User code runs
    under ``time_limit`` seconds (None: no limit; Numba-compiled loops cannot be interrupted).

    Rollback: if not healed after ``max_attempts`` (or on any exception) and the file was changed,
    the original code is written back as a new version — nothing is deleted from the history.
    Every step is published on the bus (``heal.*``, with ``session_id``) and stored.

    Never crashes its caller once started: anything raised inside the loop is recorded — by strategy
    code (any class, in its time-limited thread) as a failed run with a `StrategyError` trace
    (``TIMEOUT``, ``STRATEGY_RUNTIME``, ``STRATEGY_ERROR``), by the model callable as ``MODEL_ERROR``,
    by the machinery or the environment as status "error" with ``report.error`` (its `QLMError`, or
    ``INTERNAL``) after the rollback. Only a ``KeyboardInterrupt`` on the calling thread (Ctrl-C, also
    while waiting for the model or for strategy code) rolls back, stores the session and propagates.
    One heal per strategy at a time (`StrategyError` ``HEAL_IN_PROGRESS`` naming the holder's pid);
    a file saved by someone else during the heal is never overwritten (status "error", ``FILE_CHANGED``,
    the heal's code kept as a version). Refusals before the start (bad arguments, unknown strategy or
    data, ``HEAL_IN_PROGRESS``) raise their `QLMError`.
    """
    attempts = _check_attempts(max_attempts)
    limit = check_limit(time_limit)
    if model is not None and not callable(model):
        raise ConfigError(
            f"model must be a callable prompt -> reply, got {type(model).__name__}",
            code="BAD_MODEL",
            hint="pass e.g. model=lambda prompt: my_client.complete(prompt)",
        )
    from qlm_kernel.workspace import resolve_data

    target = files.resolve_target(strategy, workspace_only=workspace_only)
    frame, dataset_name = resolve_data(data, dataset=dataset, sample=sample)
    with heal_lock(target.name) as lock:
        from qlm_kernel.healing.recovery import recover_locked

        recover_locked(target.name)  # a heal of this strategy killed mid-way: roll it back first
        code, sha = files.read_state(target)
        original = files.record_original(target, code)
        loop = _start(target, frame, dataset_name, kwargs, model=model, model_name=model_name,
                        original=original, code=code, sha=sha, attempts=attempts,
                        options={"time_limit": limit, "require_trades": bool(require_trades),
                                 "record": record, "source": source})
        lock.describe(loop.report.session_id)
        return _drive(loop)


def _start(target: files.HealTarget, frame: pd.DataFrame, dataset_name: str | None, kwargs: dict[str, Any], *,
           model: Model | None, model_name: str | None, original: dict[str, Any], code: str, sha: str,
           attempts: int, options: dict[str, Any]) -> _HealLoop:
    """The loop of a new session (its report inside), the session stored and announced."""
    report = HealReport(
        session_id=None,
        strategy=target.name,
        path=str(target.path),
        max_attempts=attempts,
        model=model_name or _model_label(model),
        original_version=original["version"],
        original_version_id=original["id"],
        final_version=original["version"],
        final_version_id=original["id"],
    )
    loop = _HealLoop(report, target, frame, dataset_name, kwargs, model=model, original=original, code=code,
                     options=options, file_sha=sha)
    loop.recorder.start(
        {
            "params_and_settings": kwargs,
            "dataset": dataset_name,
            "bars": len(frame),
            "time_limit": options["time_limit"],
            "require_trades": options["require_trades"],
            "source": options["source"],
            "owner": owner_info(),  # which process runs it: crash recovery checks it is gone
            "original_sha256": sha,
        }
    )
    return loop


def _drive(loop: _HealLoop) -> HealReport:
    """Run the loop; record whatever it raises (see `heal`), re-raising only the user's interrupt."""
    report = loop.report
    try:
        loop.run()
    except BaseException as exc:
        if propagates(exc):
            report.status = "error"
            loop.rollback_after_crash(exc)
            loop.recorder.finish(error=exc)
            raise
        err = as_error(exc, loop.target.path)
        loop.end_with_error(err)
        loop.recorder.finish(error=err)
        return report
    loop.recorder.finish()
    return report


class _HealLoop:
    """The state of one heal session: current code and version, the recorder, the options."""

    def __init__(
        self,
        report: HealReport,
        target: files.HealTarget,
        frame: pd.DataFrame,
        dataset: str | None,
        kwargs: dict[str, Any],
        *,
        model: Model | None,
        original: dict[str, Any],
        code: str,
        options: dict[str, Any],
        file_sha: str | None = None,
    ) -> None:
        self.report = report
        self.recorder = HealRecorder(report)
        self.target = target
        self.frame = frame
        self.dataset = dataset
        self.kwargs = kwargs
        self.model = model
        self.original = {**original, "code": code}
        self.code = code
        self.version: dict[str, Any] = {"id": original["id"], "version": original["version"]}
        self.classes = class_names(code)
        self.options = options
        self.changed = False
        self.file_sha = file_sha  # what the file held when the heal last read or wrote it (CAS)
        self.rollback_failed = False

    # -- the loop -----------------------------------------------------------------------------------

    def run(self) -> None:
        """Run, diagnose, then attempt repairs until one passes or the attempts run out."""
        outcome = self._run("run", 0)
        if outcome.passed:
            self._finish("passed", healed=True, stats=outcome.stats)
            return
        trace = outcome.trace or {}
        self.report.diagnosis = trace
        started = time.time()
        ctx = trace.get("context") or {}
        self.recorder.step(
            "diagnose",
            0,
            started,
            data={
                "text": format_trace(trace),
                "code": trace.get("code"),
                "severity": ctx.get("severity", "error"),
                "file": ctx.get("file"),
                "line": ctx.get("line"),
                "version_id": self.version["id"],
            },
        )
        if self.model is None:
            self._finish("diagnosed", healed=False)
            return
        refusal: dict[str, Any] | None = None
        for attempt in range(1, self.report.max_attempts + 1):
            self.report.attempts = attempt
            candidate, refusal = self._ask(attempt, trace, refusal)
            if candidate is None:
                continue
            self._save(attempt, candidate)
            outcome = self._run("verify", attempt)
            if outcome.passed:
                self._finish("healed", healed=True, stats=outcome.stats)
                return
            trace = outcome.trace or {}
        self.rollback()
        self._finish("not_healed", healed=False)

    def _run(self, kind: str, attempt: int) -> RunOutcome:
        started = time.time()
        outcome = run_once(
            self.target,
            self.frame,
            self.dataset,
            self.kwargs,
            version=self.version,
            time_limit=self.options["time_limit"],
            require_trades=self.options["require_trades"],
            record=self.options["record"],
            source=self.options["source"],
        )
        data: dict[str, Any] = {
            "passed": outcome.passed,
            "version": self.version["version"],
            "version_id": self.version["id"],
            "run_id": outcome.run_id,
            "run_duration_s": outcome.duration_s,
        }
        if outcome.stats is not None:
            data["stats"] = outcome.stats
        if outcome.trace is not None:
            data["error"] = outcome.trace
        self.recorder.step(
            kind, attempt, started, ok=outcome.passed, data=data, version_id=self.version["id"]
        )
        return outcome

    def _ask(
        self, attempt: int, trace: dict[str, Any], refusal: dict[str, Any] | None
    ) -> tuple[str | None, dict[str, Any] | None]:
        """Prompt the model once; (validated new code, None) or (None, the refusal record)."""
        started = time.time()
        prompt = build_prompt(
            trace=trace,
            source=self.code,
            file_name=self.target.file_name,
            attempt=attempt,
            max_attempts=self.report.max_attempts,
            refusal=refusal,
        )
        self.recorder.step("prompt", attempt, started, data={"prompt": prompt, "chars": len(prompt)})
        started = time.time()
        try:
            raw = self.model(prompt)  # type: ignore[misc]
            reply = normalize_reply(raw)
        except QLMError as err:
            return None, self._reply_failed(attempt, started, err.to_dict())
        except BaseException as exc:  # the user's model client failed: an attempt used, not a crash
            if propagates(exc):  # Ctrl-C while waiting for the model
                raise
            record = {
                "type": type(exc).__name__,
                "code": "MODEL_ERROR",
                "message": str(exc)[:2000],
                "hint": "the model callable raised; check its client, key or connection",
            }
            return None, self._reply_failed(attempt, started, record)
        self.recorder.step("reply", attempt, started, ok=True, data={"text": reply.text})
        if reply.thinking:
            self.recorder.step("thinking", attempt, time.time(), data={"text": reply.thinking})
        started = time.time()
        candidate = ""
        try:
            proposal = extract_proposal(reply.text)
            candidate = proposal.body
            if proposal.kind == "diff":
                candidate = apply_unified_diff(self.code, proposal.body, self.target.file_name)
            self._check_label(proposal.label)
            check_candidate(
                candidate,
                current=self.code,
                expected_classes=self.classes,
                file_name=self.target.file_name,
                max_bytes=_max_bytes(),
            )
        except Exception as exc:  # a QLMError refusal; a bug or resource error checking a reply also refuses
            err = as_error(exc)
            record = err.to_dict()
            self.recorder.step(
                "refused",
                attempt,
                started,
                ok=False,
                data={"error": record, "reason": f"{err.code}: {err.message}", "candidate": candidate},
            )
            return None, record
        return candidate, None

    def _reply_failed(self, attempt: int, started: float, record: dict[str, Any]) -> dict[str, Any]:
        self.recorder.step("reply", attempt, started, ok=False, data={"error": record})
        return record

    def _check_label(self, label: str) -> None:
        """A fence like ```python ../other.py names a file: it must be this one."""
        from qlm_kernel.errors import SecurityError

        for word in label.split()[1:]:
            if (word.endswith(".py") or "/" in word or "\\" in word) and word not in (
                self.target.file_name,
                f"a/{self.target.file_name}",
                f"b/{self.target.file_name}",
            ):
                raise SecurityError(
                    f"the reply targets another file ({word!r}); only {self.target.file_name} may be patched",
                    code="OUTSIDE_WORKSPACE",
                    path=word,
                    hint=f"patch {self.target.file_name} only, in place",
                )

    def _save(self, attempt: int, candidate: str) -> None:
        started = time.time()
        try:
            saved = files.save_version(self.target, candidate,
                                       f"heal {self.report.session_id} attempt {attempt}",
                                       expected_sha256=self.file_sha)
        except QLMError as err:  # FILE_CHANGED (the code is stored, the user's file kept), a store failure
            self.recorder.step("patch", attempt, started, ok=False, version_id=err.context.get("version_id"),
                               data={"error": err.to_dict(), "version": err.context.get("version"),
                                     "version_id": err.context.get("version_id"), "written": False})
            raise
        diff = make_diff(self.code, candidate, self.target.file_name)
        self.changed, self.file_sha = True, saved["sha256"]
        self.code, self.version = candidate, saved
        self.report.final_version, self.report.final_version_id = saved["version"], saved["id"]
        self.recorder.step(
            "patch",
            attempt,
            started,
            ok=True,
            version_id=saved["id"],
            data={
                "diff": diff,
                "version": saved["version"],
                "version_id": saved["id"],
                "sha256": saved["sha256"],
            },
        )

    # -- ending -------------------------------------------------------------------------------------

    def rollback(self) -> None:
        """Write the original code back as a new version (only if the file was changed, and only if it
        still holds the heal's last write: a file saved by someone else is left as it is)."""
        if not self.changed or self.rollback_failed:
            return
        started = time.time()
        back = self.original["version"]
        try:
            restored = files.restore(self.target, self.original,
                                     f"heal {self.report.session_id}: not healed, restore version {back}",
                                     expected_sha256=self.file_sha)
        except QLMError as err:
            self.rollback_failed = True
            self.recorder.step("rollback", self.report.attempts, started, ok=False,
                               data={"error": err.to_dict(), "restored_from": back, "restored": False,
                                     "left_as_is": err.code == "FILE_CHANGED"})
            raise
        diff = make_diff(self.code, self.original["code"], self.target.file_name)
        self.code, self.version, self.changed = self.original["code"], restored, False
        self.file_sha = restored["sha256"]
        self.report.final_version, self.report.final_version_id = restored["version"], restored["id"]
        self.recorder.step(
            "rollback",
            self.report.attempts,
            started,
            ok=True,
            version_id=restored["id"],
            data={
                "version": restored["version"],
                "version_id": restored["id"],
                "restored_from": back,
                "diff": diff,
            },
        )

    def end_with_error(self, err: QLMError) -> None:
        """Stop the heal on an error: roll back (if the file allows), record it, status "error"."""
        rep = self.report
        rep.status, rep.healed, rep.error = "error", False, err.to_dict()
        data: dict[str, Any] = {"status": "error", "healed": False, "attempts": rep.attempts,
                                "error": rep.error, "original_version": rep.original_version}
        try:
            self.rollback()
        except BaseException as second:
            if propagates(second):
                raise
            data["rollback_error"] = as_error(second).to_dict()
        data["final_version"] = rep.final_version
        self.recorder.step("finished", rep.attempts, time.time(), ok=False, data=data)

    def rollback_after_crash(self, exc: BaseException) -> None:
        """On the user's interrupt: restore if needed, record it, never mask the original error."""
        error = {"type": type(exc).__name__, "code": "INTERRUPTED", "message": str(exc)}
        data: dict[str, Any] = {"status": "error", "healed": False, "interrupted": True, "error": error}
        self.report.error = data["error"]
        try:
            self.rollback()
        except Exception as second:  # reported on the original exception and in the step
            data["rollback_error"] = as_error(second).to_dict()
            exc.add_note(f"qlm heal: restoring the original version also failed: {second}")
        data["final_version"] = self.report.final_version
        self.recorder.step("finished", self.report.attempts, time.time(), ok=False, data=data)

    def _finish(self, status: str, *, healed: bool, stats: dict[str, Any] | None = None) -> None:
        rep = self.report
        rep.status, rep.healed, rep.final_stats = status, healed, stats
        self.recorder.step(
            "finished",
            rep.attempts,
            time.time(),
            ok=healed,
            data={
                "status": status,
                "healed": healed,
                "attempts": rep.attempts,
                "original_version": rep.original_version,
                "final_version": rep.final_version,
                "stats": stats,
            },
        )


def _check_attempts(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 20:
        raise ConfigError(
            "max_attempts must be an integer from 1 to 20",
            code="BAD_ATTEMPTS",
            hint="e.g. max_attempts=3",
            value=repr(value),
        )
    return value


def _model_label(model: Model | None) -> str | None:
    if model is None:
        return None
    return getattr(model, "__qualname__", None) or getattr(model, "__name__", None) or type(model).__name__


def _max_bytes() -> int:
    from qlm_kernel.workspace.strategies import MAX_STRATEGY_BYTES

    return MAX_STRATEGY_BYTES
