"""``qlm portfolio STRATEGY --universe NAME [--param k=v]... [settings] [--report FILE.html]`` and
``qlm portfolio weights --universe NAME --weights FILE.csv [--rebalance M] [--drift 0.05]``.

A thin skin over `qlm_kernel.session.backtest_portfolio` (the recorded portfolio run every front end
starts): STRATEGY is applied to every symbol of the stored universe with shared cash, or, with
``--weights``, the universe is held at the target weights of a CSV (a time column and one column per
symbol) through `qlm.TargetWeights`. The settings flags are `qlm backtest`'s (`SETTING_FLAGS`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qlm_kernel.cli import output
from qlm_kernel.cli.backtest import (
    add_setting_options,
    parse_param,
    settings_from_args,
    stats_table,
    write_report,
)
from qlm_kernel.errors import DataError
from qlm_kernel.formatting import call_text, format_stat

WEIGHTS = "weights"  # the STRATEGY argument of a --weights run
REBALANCE_CHOICES = ("D", "W", "M", "Q", "Y")  # kept here (not imported) so `qlm --help` stays instant
TIME_COLUMNS = ("time", "timestamp", "datetime", "date")


# --- parser -----------------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``qlm portfolio``."""
    p = subparsers.add_parser(
        "portfolio",
        parents=[common],
        help="backtest a strategy over a stored universe (shared cash), or hold target weights",
        description="Backtest STRATEGY (a name from $QLM_HOME/strategies or the bundled examples, or a "
        ".py file) on every symbol of a universe imported with 'qlm data import-universe', all trading "
        "from one cash balance. With --weights FILE.csv, STRATEGY is 'weights' and the universe is held "
        "at the CSV's target weights (a time column, one column per symbol; fractions of the "
        "portfolio's value, negative = short).",
    )
    p.add_argument("strategy", metavar="STRATEGY",
                   help="strategy name or .py file, or 'weights' with --weights")
    p.add_argument("--universe", "-u", metavar="NAME", required=True,
                   help="a universe imported with 'qlm data import-universe'")
    p.add_argument(
        "--param",
        "-p",
        action="append",
        type=parse_param,
        default=[],
        metavar="NAME=VALUE",
        help="strategy parameter (repeatable), e.g. --param fast=5 --param slow=20",
    )
    add_setting_options(p)
    weights = p.add_argument_group("target weights (STRATEGY = weights)")
    weights.add_argument("--weights", metavar="FILE.csv",
                         help="target weights: a time column and one column per symbol")
    weights.add_argument("--rebalance", metavar="PERIOD", choices=REBALANCE_CHOICES,
                         help="hold the latest weights and trade them on each period's first bar "
                         f"({', '.join(REBALANCE_CHOICES)}); default: trade on the CSV's rows")
    weights.add_argument("--drift", type=float, metavar="F",
                         help="also trade a symbol back once its weight is F off target, e.g. 0.05")
    p.add_argument("--report", metavar="FILE.html", help="write an HTML report (folders are created)")
    p.set_defaults(run=run)


# --- run --------------------------------------------------------------------------------------------


def check_weight_options(args: argparse.Namespace) -> None:
    """``weights`` and ``--weights`` go together; --rebalance and --drift only apply to them."""
    if args.weights is None:
        if args.strategy == WEIGHTS:
            raise output.UsageError("STRATEGY 'weights' needs --weights FILE.csv")
        if args.rebalance is not None or args.drift is not None:
            raise output.UsageError("--rebalance and --drift only apply with --weights FILE.csv")
    elif args.strategy != WEIGHTS:
        raise output.UsageError(f"with --weights, STRATEGY is 'weights' (got {args.strategy!r}): "
                                "qlm portfolio weights --universe NAME --weights FILE.csv")


def run(args: argparse.Namespace) -> int:
    """Validate the options, run the recorded portfolio backtest, write the report, print."""
    from qlm_kernel import session

    check_weight_options(args)
    settings = session.check_settings(settings_from_args(args))  # fail fast before any loading
    strategy: Any = args.strategy
    if args.weights is not None:
        from qlm_kernel.strategy.weights import TargetWeights

        strategy = TargetWeights(read_weights(args.weights), rebalance=args.rebalance, drift=args.drift)
    with output.user_code_stdout():
        result = session.backtest_portfolio(strategy, args.universe, source="cli", **dict(args.param),
                                            **settings)
    report = write_report(result, args.report) if args.report else None
    if args.json:
        output.emit_json({**result.to_dict(include_trades=False), "report": report})
    else:
        output.emit_text(human_summary(result, settings, report))
    return output.EXIT_OK


def read_weights(target: str) -> Any:
    """The weights CSV as a frame indexed by UTC time (the ``time``/``timestamp``/``date`` column, else
    the first), one column per symbol; a missing file or an unreadable time is a `DataError`."""
    import pandas as pd

    path = Path(target).expanduser()
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError as exc:
        raise DataError(f"weights file not found: {target}", hint="give a CSV with a time column and one "
                        "column per symbol, e.g. --weights weights.csv", code="NOT_FOUND",
                        file=str(path)) from exc
    except (OSError, ValueError) as exc:  # pandas' parser errors are ValueErrors
        raise DataError(f"cannot read the weights file {target}: {exc}", hint="a CSV with a header row: "
                        "time,AAA,BBB", code="DATA_BAD_INPUT", file=str(path)) from exc
    if frame.shape[1] < 2:
        raise DataError(f"the weights file {target} needs a time column and at least one symbol column",
                        hint="header: time,AAA,BBB; rows: 2020-01-01,0.5,0.5", code="DATA_BAD_INPUT",
                        file=str(path))
    lower = {str(c).strip().lower(): c for c in frame.columns}
    column = next((lower[name] for name in TIME_COLUMNS if name in lower), frame.columns[0])
    times = pd.to_datetime(frame[column], utc=True, errors="coerce", format="mixed")
    bad = times.isna().to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise DataError(f"the weights file {target} has an unreadable time {frame[column].iloc[row]!r} "
                        f"(data row {row + 1}, column {column!r})", hint="write times as ISO 8601, e.g. "
                        "2020-01-01 or 2020-01-01T09:30:00Z", code="DATA_BAD_INPUT", file=str(path),
                        row=row + 1, column=str(column))
    weights = frame.drop(columns=[column]).set_axis(pd.DatetimeIndex(times, name="time"))
    weights.columns = [str(c).strip() for c in weights.columns]
    return weights


# --- human output -----------------------------------------------------------------------------------


def symbol_rows(result: Any) -> list[tuple[str, ...]]:
    """Per symbol: trades, win rate, pnl and contribution (pnl / initial cash), formatted."""
    return [
        (
            str(sym),
            format_stat("int", row["n_trades"]),
            format_stat("pct", row["win_rate"]),
            format_stat("money", row["pnl"]),
            format_stat("pct", row["contribution"]),
        )
        for sym, row in result.symbol_stats.iterrows()
    ]


def human_summary(result: Any, settings: dict[str, Any], report: str | None) -> str:
    """Header (strategy, params, universe), non-default settings, stats, per-symbol table, warnings,
    report path and run id."""
    universe = result.data
    index = universe.index
    span = f"{index[0].isoformat()} -> {index[-1].isoformat()}"
    lines = [
        f"{call_text(result.strategy_name, result.params)} on universe {universe.name}: "
        f"{len(result.symbols)} symbols, {len(index):,} bars, {span}"
    ]
    if settings:
        lines.append("settings: " + ", ".join(f"{k}={v!r}" for k, v in settings.items()))
    lines += ["", stats_table(result.stats), "", "by symbol:"]
    table = output.table(symbol_rows(result), headers=("symbol", "trades", "win rate", "pnl", "contribution"))
    lines += ["  " + line for line in table.splitlines()]
    lines.append("")
    lines += [f"warning: {w['message']}\n  {w['hint']}" for w in result.warnings]
    lines.append(f"report: {report}" if report else "report: none (add --report FILE.html)")
    run_id = result.meta.get("run_id")
    lines.append(f"run id: {run_id}" if run_id is not None else "run id: none (recording is off)")
    lines.append(f"took {result.meta.get('duration_s', float('nan')):.3f} s")
    return "\n".join(lines)
