"""`next_prompt`: what the heal loop would ask the model next, given the replies so far — a dry run.

MCP sampling in the 2026 protocol is a request/retry exchange: the server names the prompts it needs,
the client answers them and calls again, and the server re-derives its questions on every round. A
heal over MCP therefore first *plans* its prompts with this dry run (the same loop, validation and
runs as `heal`, but on a scratch copy of the file: nothing is saved, stored or published), then runs
the real `heal` once with the collected replies. Deterministic for the same file and replies, so the
questions render identically across rounds; paths of the scratch copy are shown as the real file's.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from qlm_kernel.errors import QLMError
from qlm_kernel.healing import target as files
from qlm_kernel.healing.guard import HealControl, as_error, propagates
from qlm_kernel.healing.loop import _check_attempts, _HealLoop
from qlm_kernel.healing.policy import class_names
from qlm_kernel.healing.report import HealReport
from qlm_kernel.healing.runner import RunOutcome
from qlm_kernel.strategy.timelimit import check_limit


class _NeedReply(HealControl):
    """Raised out of the dry loop when it asks for a reply it does not have yet (flow control, so the
    loop's model-failure handling does not swallow it)."""

    def __init__(self, prompt: str) -> None:
        super().__init__("the next reply is needed")
        self.prompt = prompt


class _Quiet:
    """A recorder that records nothing: the dry run must leave no trace."""

    def __init__(self, report: HealReport) -> None:
        self.report = report

    def start(self, config: dict[str, Any]) -> None:
        """Nothing to announce."""

    def step(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to record."""

    def finish(self, error: BaseException | None = None) -> None:
        """Nothing to store."""


def _swap_paths(value: Any, scratch: str, real: str) -> Any:
    if isinstance(value, str):
        return value.replace(scratch, real)
    if isinstance(value, dict):
        return {k: _swap_paths(v, scratch, real) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap_paths(v, scratch, real) for v in value]
    return value


class _DryLoop(_HealLoop):
    """The heal loop on a scratch copy: patches go to the copy, runs are not recorded."""

    real_dir: str
    scratch_dir: str

    def _save(self, attempt: int, candidate: str) -> None:
        self.target.path.write_text(candidate, encoding="utf-8")
        self.code, self.changed = candidate, True
        self.version = {"id": None, "version": None}

    def rollback(self) -> None:
        """Nothing to restore: the real file was never touched."""

    def _run(self, kind: str, attempt: int) -> RunOutcome:
        outcome = super()._run(kind, attempt)
        if outcome.trace is None:
            return outcome
        trace = _swap_paths(outcome.trace, self.scratch_dir, self.real_dir)
        return RunOutcome(outcome.passed, trace, outcome.stats, None, outcome.duration_s)


def next_prompt(strategy: Any, frame: pd.DataFrame, replies: list[Any], *, dataset: str | None = None,
                max_attempts: int = 3, time_limit: float | None = 10.0, require_trades: bool = True,
                workspace_only: bool = True, **kwargs: Any) -> str | None:
    """The prompt `heal` would send after ``replies`` (one per earlier attempt), or None when no further
    reply is needed (the file passes, a reply healed it, or the attempts are used up)."""
    attempts = _check_attempts(max_attempts)
    limit = check_limit(time_limit)
    target = files.resolve_target(strategy, workspace_only=workspace_only)
    code = files.read_code(target)
    original = files.record_original(target, code)
    scratch_dir = Path(tempfile.mkdtemp(prefix="qlm-heal-plan-"))
    try:
        scratch = files.HealTarget(name=target.name, path=scratch_dir / target.file_name, in_workspace=False)
        scratch.path.write_text(code, encoding="utf-8")
        report = HealReport(session_id="dry-run", strategy=target.name, path=str(target.path),
                            max_attempts=attempts, model="dry-run", original_version=original["version"],
                            original_version_id=original["id"], final_version=original["version"],
                            final_version_id=original["id"])
        pending = list(replies)

        def model(prompt: str) -> Any:
            if not pending:
                raise _NeedReply(prompt)
            return pending.pop(0)

        loop = _DryLoop(report, scratch, frame, dataset, kwargs, model=model, original=original, code=code,
                        options={"time_limit": limit, "require_trades": bool(require_trades), "record": False,
                                 "source": "heal-plan"})
        loop.recorder = _Quiet(report)  # type: ignore[assignment]
        loop.classes = class_names(code)
        loop.real_dir, loop.scratch_dir = str(target.path.parent), str(scratch_dir)
        try:
            loop.run()
        except _NeedReply as need:
            return need.prompt
        except QLMError:
            raise
        except BaseException as exc:  # never a raw exception out of the plan: the user's Ctrl-C only
            if propagates(exc):
                raise
            raise as_error(exc, scratch.path) from exc
        return None
    finally:
        shutil.rmtree(scratch_dir, ignore_errors=True)
