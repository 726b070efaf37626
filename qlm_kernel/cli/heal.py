"""``qlm heal STRATEGY``: diagnose a failing strategy, or repair it with a model command.

Without ``--model-cmd`` the strategy is run and its failure diagnosed (the structured trace, nothing
written). With ``--model-cmd "CMD"`` each repair prompt is piped to ``CMD`` (run by the shell, prompt
on stdin, ``QLM_HEAL_SYSTEM_PROMPT`` in its environment) and its stdout is the model's reply, so any
model client with a command line plugs in. Every step is recorded like ``qlm.heal`` does; a strategy
that is not healed is restored. Exit 0 when the strategy passes (healed or already fine), 4 when not.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from typing import Any

from qlm_kernel.cli import output
from qlm_kernel.cli.backtest import (
    add_data_options,
    add_setting_options,
    checked_options,
    load_data,
    parse_param,
)

MODEL_TIMEOUT_S = 600.0


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``qlm heal``."""
    p = subparsers.add_parser(
        "heal",
        parents=[common],
        help="diagnose a failing strategy, or repair it with a model command",
        description="Run STRATEGY ($QLM_HOME/strategies name or a .py path); on failure print the "
        "structured diagnosis, and with --model-cmd ask that command for fixes, validate, save and re-run.",
    )
    p.add_argument("strategy", metavar="STRATEGY", help="strategy name or .py file")
    add_data_options(p)
    p.add_argument("--param", "-p", action="append", type=parse_param, default=[], metavar="NAME=VALUE",
                   help="strategy parameter (repeatable)")
    add_setting_options(p)
    p.add_argument("--model-cmd", metavar="CMD",
                   help="shell command that reads a prompt on stdin and prints the model's reply")
    p.add_argument("--max-attempts", type=int, default=3, metavar="N", help="model replies to try (3)")
    p.add_argument("--time-limit", type=float, default=10.0, metavar="S",
                   help="seconds the strategy's code may run per attempt (10)")
    p.set_defaults(run=run)


class CommandModel:
    """A heal model backed by a shell command: prompt on stdin, reply on stdout."""

    def __init__(self, command: str, timeout: float = MODEL_TIMEOUT_S) -> None:
        self.command = command
        self.timeout = timeout

    def __call__(self, prompt: str) -> str:
        from qlm_kernel.errors import StrategyError
        from qlm_kernel.session import HEAL_SYSTEM_PROMPT

        env = {**os.environ, "QLM_HEAL_SYSTEM_PROMPT": HEAL_SYSTEM_PROMPT}
        try:
            done = subprocess.run(self.command, shell=True, input=prompt, capture_output=True, text=True,
                                  timeout=self.timeout, env=env, check=False)
        except subprocess.TimeoutExpired as exc:
            raise StrategyError(f"the model command ran longer than {self.timeout:g} s", code="MODEL_TIMEOUT",
                                hint="check the command, or raise its own timeout") from exc
        if done.returncode != 0:
            detail = (done.stderr or "").strip()[-500:]
            raise StrategyError(f"the model command exited with {done.returncode}", code="MODEL_ERROR",
                                hint=detail or "run the command by hand to see why")
        return done.stdout


def run(args: argparse.Namespace) -> int:
    """Diagnose or heal; print the report (table or JSON)."""
    from qlm_kernel import session

    settings = checked_options(args)
    frame, dataset, source = load_data(args)
    model = CommandModel(args.model_cmd) if args.model_cmd else None
    with output.user_code_stdout():
        report = session.heal(args.strategy, frame, dataset=dataset, model=model,
                              max_attempts=args.max_attempts, time_limit=args.time_limit,
                              model_name=args.model_cmd, source="cli",
                              **dict(args.param), **settings)
    if args.json:
        output.emit_json({**report.to_dict(), "data": source})
    else:
        output.emit_text(human_summary(report))
    return output.EXIT_OK if report.status in ("passed", "healed") else output.EXIT_STRATEGY


def human_summary(report: Any) -> str:
    """Status line, the diagnosis (when it failed) and one line per step."""
    lines = [f"heal {report.strategy}: {report.status} after {report.attempts} attempt(s); version "
             f"{report.original_version} -> {report.final_version}; session {report.session_id}"]
    diagnosis = report.diagnosis or {}
    if diagnosis:
        ctx = diagnosis.get("context") or {}
        lines.append(f"diagnosis: {diagnosis.get('code')}: {diagnosis.get('message')}")
        if ctx.get("file"):
            lines.append(f"  at {ctx.get('file')}, line {ctx.get('line')}")
        if ctx.get("excerpt"):
            lines.append("  " + str(ctx["excerpt"]).replace("\n", "\n  "))
        if diagnosis.get("hint"):
            lines.append(f"  hint: {diagnosis['hint']}")
    for step in report.steps:
        mark = "" if step.ok is None else (" ok" if step.ok else " FAILED")
        lines.append(f"  [{step.attempt}] {step.kind}{mark} ({step.duration_s:.2f} s)")
    return "\n".join(lines)
