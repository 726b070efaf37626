"""``qlm backtest STRATEGY (--data FILE | --dataset NAME | --sample KIND) [--param k=v]... [settings]``.

One code path with notebooks and MCP: `resolve_strategy` (parameters given as text; `Param` parses
them), `load_ohlcv` / `DataManager.load` / `sample_data`, then `qlm_kernel.engine.backtest`, and
`BacktestResult.save_report` for ``--report``. The settings flags mirror `BacktestSettings`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qlm_kernel.cli import output
from qlm_kernel.cli.progress import Stages, progress_wanted
from qlm_kernel.errors import QLMSystemError
from qlm_kernel.formatting import stat_rows

# Kept here (not imported from the engine) so `qlm --help` does not load numba; a test checks they
# match qlm_kernel.engine.layout and qlm_kernel.data.SAMPLE_KINDS.
FILL_CHOICES = ("close", "next_open")
SIZE_TYPE_CHOICES = ("units", "value", "percent")
DIRECTION_CHOICES = ("long", "short", "both")
SAMPLE_CHOICES = ("synthetic", "goog", "eurusd", "btcusd")

# setting name -> (flag, argparse keyword arguments); the names are BacktestSettings' fields.
SETTING_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "fill": ("--fill", {"choices": FILL_CHOICES, "help": "fill at the signal bar's close or the next open"}),
    "fees": ("--fees", {"type": float, "metavar": "F", "help": "proportional fee, e.g. 0.001 = 0.1%%"}),
    "fixed_fees": ("--fixed-fees", {"type": float, "metavar": "F", "help": "cash fee per order"}),
    "slippage": ("--slippage", {"type": float, "metavar": "F", "help": "price slippage fraction"}),
    "init_cash": ("--init-cash", {"type": float, "metavar": "F", "help": "starting cash (10000)"}),
    "size": ("--size", {"type": float, "metavar": "F", "help": "order size (default: all cash)"}),
    "size_type": ("--size-type", {"choices": SIZE_TYPE_CHOICES, "help": "what --size counts"}),
    "integer": ("--integer", {"action": "store_true", "help": "whole units only"}),
    "direction": ("--direction", {"choices": DIRECTION_CHOICES, "help": "allowed sides (both)"}),
    "sl_stop": ("--sl-stop", {"type": float, "metavar": "F", "help": "stop-loss, fraction of entry"}),
    "tp_stop": ("--tp-stop", {"type": float, "metavar": "F", "help": "take-profit, fraction of entry"}),
    "tsl_stop": ("--tsl-stop", {"type": float, "metavar": "F", "help": "trailing stop fraction"}),
    "close_at_end": ("--close-at-end", {"action": "store_true", "help": "close at the end, with costs"}),
    "leverage": ("--leverage", {"type": float, "metavar": "X", "help": "buying power = X * cash (1: cash)"}),
    "maintenance_margin": (
        "--maintenance-margin",
        {"type": float, "metavar": "F", "help": "liquidate below F * position value (default 0)"},
    ),
}

STAGE_STRATEGY = "loading strategy"
STAGE_DATA = "loading data"
STAGE_KERNELS = "loading kernels (the first run compiles)"
STAGE_RUN = "computing signals and simulating"
STAGE_REPORT = "writing report"


# --- parser -----------------------------------------------------------------------------------------


def parse_param(text: str) -> tuple[str, str]:
    """``"fast=10"`` -> ``("fast", "10")``; the value stays text for `Param` to parse."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. fast=10), got {text!r}")
    return key, value.strip()


def add_data_options(p: argparse.ArgumentParser) -> None:
    """The data source flags shared by the commands that run backtests."""
    src = p.add_argument_group("data (exactly one of --data, --dataset, --sample)")
    one = src.add_mutually_exclusive_group(required=True)
    one.add_argument("--data", metavar="FILE", help="CSV (optionally .gz) or Parquet OHLCV file")
    one.add_argument("--dataset", metavar="NAME", help="a dataset imported with 'qlm data import'")
    one.add_argument(
        "--sample", metavar="KIND", choices=SAMPLE_CHOICES, help=f"built-in data: {', '.join(SAMPLE_CHOICES)}"
    )
    src.add_argument("--n", type=int, metavar="N", help="with --sample: number of bars (100000)")
    src.add_argument("--seed", type=int, metavar="S", help="with --sample synthetic: random seed (0)")
    src.add_argument(
        "--repair",
        action="store_true",
        help="with --data: sort rows and drop duplicate timestamps instead of refusing them",
    )


def add_setting_options(p: argparse.ArgumentParser) -> None:
    """One flag per `BacktestSettings` field, shared by ``backtest`` and ``optimize``."""
    settings = p.add_argument_group("settings (see qlm_kernel.engine.BacktestSettings)")
    for name, (flag, kwargs) in SETTING_FLAGS.items():
        settings.add_argument(flag, dest=f"setting_{name}", default=None, **kwargs)


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``qlm backtest``."""
    p = subparsers.add_parser(
        "backtest",
        parents=[common],
        help="backtest a strategy on a file, a stored dataset or sample data",
        description="Backtest STRATEGY: a name from $QLM_HOME/strategies or the bundled examples "
        "(e.g. sma_cross), or a path to a .py file (path.py:ClassName picks one class).",
    )
    p.add_argument("strategy", metavar="STRATEGY", help="strategy name or .py file")
    add_data_options(p)
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
    p.add_argument("--report", metavar="FILE.html", help="write an HTML report (folders are created)")
    p.set_defaults(run=run)


# --- run --------------------------------------------------------------------------------------------


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the user gave (others keep `BacktestSettings` defaults)."""
    values = {name: getattr(args, f"setting_{name}") for name in SETTING_FLAGS}
    return {name: value for name, value in values.items() if value is not None}


def check_source_options(args: argparse.Namespace) -> None:
    """Refuse data options that would be silently ignored with the chosen source."""
    if args.sample is None and (args.n is not None or args.seed is not None):
        raise output.UsageError("--n and --seed only apply to --sample")
    if args.data is None and args.repair:
        raise output.UsageError("--repair only applies to --data (datasets were validated on import)")


def checked_options(args: argparse.Namespace) -> dict[str, Any]:
    """The data options checked (`check_source_options`) and the settings given, validated: what every
    command taking data and settings does first, so a mistake fails before anything loads."""
    from qlm_kernel import session

    check_source_options(args)
    return session.check_settings(settings_from_args(args))


def run(args: argparse.Namespace) -> int:
    """Validate settings, load strategy and data, run the backtest, write the report, print."""
    from qlm_kernel import session
    from qlm_kernel.strategy import resolve_strategy

    settings = checked_options(args)  # fail fast before any loading
    show = progress_wanted(args)
    names = [STAGE_STRATEGY, STAGE_DATA, *([STAGE_KERNELS] if show else []), STAGE_RUN]
    names += [STAGE_REPORT] if args.report else []
    report = None
    with Stages(names, enabled=show) as stages:
        with stages.stage(STAGE_STRATEGY), output.user_code_stdout():
            strategy = resolve_strategy(args.strategy, **dict(args.param))
        with stages.stage(STAGE_DATA):
            frame, dataset, source = load_data(args)
        if show:
            with stages.stage(STAGE_KERNELS):
                warm_kernels(frame)
        with stages.stage(STAGE_RUN), output.user_code_stdout():
            result = session.backtest(strategy, frame, dataset=dataset, source="cli", **settings)
        if args.report:
            with stages.stage(STAGE_REPORT):
                report = write_report(result, args.report)
    if args.json:
        output.emit_json({**result.to_dict(), "data": source, "report": report})
    else:
        output.emit_text(human_summary(result, source, settings, report))
    return output.EXIT_OK


def data_source(args: argparse.Namespace) -> Any:
    """The `DataSource` named by --data, --dataset or --sample (with --n/--seed)."""
    from qlm_kernel.session import DataSource

    if args.sample is not None:
        options = {k: v for k, v in (("n", args.n), ("seed", args.seed)) if v is not None}
        return DataSource.of(sample={"kind": args.sample, **options})
    return DataSource.of(args.data, dataset=args.dataset, repair=args.repair)


def load_data(args: argparse.Namespace) -> tuple[Any, str | None, dict[str, Any]]:
    """(frame, dataset name, JSON-safe note of where the bars came from) through the session's data
    resolution."""
    source = data_source(args)
    frame, dataset = source.resolve()
    note = source.describe()
    if dataset is not None:
        note["fingerprint"] = frame.attrs.get("fingerprint")
    index = frame.index
    note.update(rows=len(frame), start=index[0].isoformat(), end=index[-1].isoformat())
    return frame, dataset, note


def warm_kernels(frame: Any) -> None:
    """Run the engine once on two bars so that loading (or the first compile of) the Numba kernels is
    its own visible stage instead of an unexplained pause inside the backtest."""
    import numpy as np

    from qlm_kernel.strategy import Signals
    from qlm_kernel.strategy.run import backtest

    tiny = frame.iloc[:2]
    backtest(Signals(entry_long=np.zeros(len(tiny), dtype=bool)), tiny)


def write_report(result: Any, target: str) -> str:
    """``result.save_report`` into ``target`` (parent folders created); returns the absolute path."""
    path = Path(target).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        result.save_report(str(path))
    except OSError as exc:
        raise QLMSystemError(
            f"cannot write the report to {target}: {exc.strerror or exc}",
            hint="choose a writable file path, e.g. --report reports/run.html",
            code="REPORT_WRITE",
            file=str(path),
        ) from exc
    return str(path.resolve())


# --- human output -----------------------------------------------------------------------------------


def stats_table(stats: Any) -> str:
    """The stats as an aligned label/value table (`qlm_kernel.formatting.stat_rows`, values right-aligned)."""
    rows = stat_rows(stats, skip=())
    if not rows:
        return "  (none)"
    width = max(len(label) for label, _ in rows)
    values = max(len(text) for _, text in rows)
    return "\n".join(f"  {label.ljust(width)}  {text.rjust(values)}" for label, text in rows)


def describe_source(source: dict[str, Any]) -> str:
    """``file prices.csv`` / ``dataset btc_1h`` / ``sample synthetic (seed 0)``."""
    if source["kind"] == "file":
        return f"file {source['path']}"
    if source["kind"] == "dataset":
        return f"dataset {source['dataset']}"
    spec = source["sample"]
    seed = f" (seed {spec['seed']})" if spec.get("seed") is not None else ""
    return f"sample {spec['kind']}{seed}"


def human_summary(result: Any, source: dict[str, Any], settings: dict[str, Any], report: str | None) -> str:
    """Header (strategy, params, data), non-default settings, the stats table, trades and report path."""
    params = ", ".join(f"{k}={v!r}" for k, v in result.params.items())
    lines = [
        f"{result.strategy_name}({params}) on {describe_source(source)}: "
        f"{source['rows']:,} bars, {source['start']} -> {source['end']}"
    ]
    if settings:
        lines.append("settings: " + ", ".join(f"{k}={v!r}" for k, v in settings.items()))
    lines += ["", stats_table(result.stats), ""]
    trades = result.trades
    n_open = int((trades["status"] == "open").sum())
    lines.append(f"trades: {len(trades):,} ({len(trades) - n_open:,} closed, {n_open} open)")
    lines += [f"warning: {w['message']}\n  {w['hint']}" for w in result.warnings]
    lines.append(f"report: {report}" if report else "report: none (add --report FILE.html)")
    lines.append(f"took {result.meta.get('duration_s', float('nan')):.3f} s")
    return "\n".join(lines)
