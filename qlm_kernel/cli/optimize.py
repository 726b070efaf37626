"""``qlm optimize STRATEGY (--data | --dataset | --sample) --space name=start:stop:step ... [options]``.

A thin skin over `qlm_kernel.optimization.optimize`: every optimization is a job in the store, so
``--resume JOB`` (the same command again, plus the job id) skips the trials already stored.
Ranges follow Python: ``5:50:5`` is ``range(5, 50, 5)`` (the stop is excluded); ``a,b,c`` lists
values (numbers or words); a single value fixes a parameter.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from qlm_kernel.cli import output
from qlm_kernel.cli.backtest import (
    add_data_options,
    add_setting_options,
    checked_options,
    data_source,
)
from qlm_kernel.cli.progress import progress_wanted, terminal_size
from qlm_kernel.formatting import stat_text

METHOD_CHOICES = ("auto", "grid", "random", "genetic")
OPERATORS = (">=", "<=", ">", "<", "==")


def parse_number(text: str) -> int | float | str:
    """``"10"`` -> 10, ``"0.5"`` -> 0.5, anything else stays text (categorical values)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def parse_space(text: str) -> tuple[str, list[Any]]:
    """``"fast=5:50:5"`` -> ("fast", [5, 10, ..., 45]); ``"mode=a,b"``; ``"slow=20"``."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier() or not spec.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=START:STOP:STEP or NAME=a,b,c, got {text!r}")
    spec = spec.strip()
    if ":" in spec:
        parts = [parse_number(p) for p in spec.split(":")]
        if len(parts) not in (2, 3) or not all(isinstance(p, (int, float)) for p in parts):
            raise argparse.ArgumentTypeError(f"{text!r}: a range is START:STOP or START:STOP:STEP in numbers")
        start, stop = parts[0], parts[1]
        step = parts[2] if len(parts) == 3 else 1
        if step <= 0 or stop <= start:
            raise argparse.ArgumentTypeError(f"{text!r}: need START < STOP and STEP > 0 (STOP is excluded)")
        if all(isinstance(p, int) for p in parts):
            return name, list(range(start, stop, step))
        count = int((stop - start) / step + 1e-9)
        values = [round(start + k * step, 12) for k in range(count + 1)]
        return name, [v for v in values if v < stop - 1e-12]
    return name, [parse_number(v.strip()) for v in spec.split(",") if v.strip()]


def parse_constraint(text: str) -> tuple[str, tuple[str, float]]:
    """``"n_trades>=10"`` -> ("n_trades", (">=", 10.0))."""
    for op in OPERATORS:
        key, sep, value = text.partition(op)
        if sep and key.strip().isidentifier():
            try:
                return key.strip(), (op, float(value))
            except ValueError:
                break
    raise argparse.ArgumentTypeError(
        f"expected STAT>=NUMBER (or <=, >, <, ==), e.g. n_trades>=10; got {text!r}"
    )


def add_space_option(p: argparse.ArgumentParser) -> None:
    """``--space NAME=SPEC`` (repeatable), for every command that searches a space."""
    p.add_argument("--space", action="append", type=parse_space, default=[], metavar="NAME=SPEC",
                   help="a parameter's values: START:STOP:STEP (stop excluded) or a,b,c (repeatable); "
                   "omitted parameters use their declared grid")


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``qlm optimize``."""
    p = subparsers.add_parser(
        "optimize",
        parents=[common],
        help="search a strategy's parameters (grid, random, genetic) as a resumable job",
        description="Optimize STRATEGY's parameters. Every run is a job in the store: rerun the same "
        "command with --resume JOB to continue after an interruption.",
    )
    p.add_argument("strategy", metavar="STRATEGY", help="strategy name or .py file")
    add_data_options(p)
    add_space_option(p)
    p.add_argument(
        "--method",
        choices=METHOD_CHOICES,
        default="auto",
        help="auto = grid up to 5000 combinations, genetic above",
    )
    p.add_argument("--objective", default="sharpe", help="a stats key to optimize (sharpe)")
    p.add_argument(
        "--minimize",
        action="store_true",
        help="minimize the objective (default: its natural direction, e.g. lower volatility)",
    )
    p.add_argument(
        "--constraint",
        action="append",
        type=parse_constraint,
        default=[],
        metavar="STAT>=X",
        help="feasibility rule, e.g. n_trades>=10 (repeatable)",
    )
    p.add_argument("--min-trades", type=int, metavar="N", help="a trial with fewer trades is never the best")
    p.add_argument("--n-trials", type=int, metavar="N", help="random/genetic: evaluations to spend")
    p.add_argument("--search-seed", type=int, default=0, metavar="S", help="random/genetic seed (0)")
    p.add_argument("--jobs", type=int, metavar="N", help="worker threads (default: all cores)")
    p.add_argument("--resume", metavar="JOB", help="continue this stored job (same command otherwise)")
    p.add_argument("--top", type=int, default=10, metavar="N", help="trials to show (10)")
    add_setting_options(p)
    p.set_defaults(run=run, param=[])


def run(args: argparse.Namespace) -> int:
    """Load data, run the search with a live progress bar, print the best trials."""
    from qlm_kernel import session

    settings = checked_options(args)
    data = data_source(args)
    bar = _ProgressBar(enabled=progress_wanted(args))
    try:
        with output.user_code_stdout():
            result = session.optimize(
                args.strategy,
                data.resolve()[0] if data.repair else data.data,  # a repaired file is not re-read on resume
                space=dict(args.space) or None,
                method=args.method,
                objective=args.objective,
                maximize=False if args.minimize else None,  # None: the objective's natural direction
                constraints=dict(args.constraint) or None,
                min_trades=args.min_trades,
                n_trials=args.n_trials,
                seed=args.search_seed,
                n_jobs=args.jobs,
                resume=args.resume,
                dataset=data.dataset,
                sample=data.sample,
                progress=bar.update,
                **settings,
            )
    finally:
        bar.close()
    if args.json:
        doc = result.to_dict()
        doc["data"] = data.describe()
        output.emit_json(doc)
    else:
        output.emit_text(human_summary(result, args.top))
    return output.EXIT_OK


def human_summary(result: Any, top: int) -> str:
    """Job, method, best parameters and objective, and the top trials as a table."""
    lines = [
        f"job {result.job_id or '(not recorded)'}: {result.method} search, {len(result.trials)} trials, "
        f"status {result.status}",
        f"best {result.objective} = "
        f"{stat_text(result.objective, result.best_value)} at "
        + ", ".join(f"{k}={v}" for k, v in (result.best_params or {}).items()),
        *(f"warning: {w['message']}\n  {w['hint']}" for w in result.warnings),
        "",
    ]
    trials = result.trials
    if len(trials):
        ranked = trials.sort_values(result.objective, ascending=not result.maximize, na_position="last")
        lines.append(ranked.head(top).to_string(index=False))
    return "\n".join(lines)


class _ProgressBar:
    """tqdm bar fed by the optimizer's progress callback (done/total, best so far)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._bar = None

    def update(self, info: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self._bar is None:
            columns, lines = terminal_size(sys.stderr)
            self._bar = tqdm(
                total=info.get("total"),
                file=sys.stderr,
                leave=False,
                unit="trial",
                ncols=columns,
                nrows=lines,
            )
        self._bar.total = info.get("total") or self._bar.total
        self._bar.n = info.get("done", self._bar.n)
        best = info.get("best_value")
        if best is not None:
            self._bar.set_postfix_str(f"best {best:.4g}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
