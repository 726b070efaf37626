"""``qlm runs list``, ``qlm runs show ID`` and ``qlm runs reproduce ID``: the backtest runs recorded in
the workspace store.

Every ``qlm.backtest`` (and ``qlm backtest``) is recorded with its strategy version, data fingerprint,
parameters, settings and stats or error; these commands read them back (read-only, never creating the
database). ``--json`` prints ``{"runs": [...]}`` / the run record, with ``strategy_version`` added.
"""

from __future__ import annotations

import argparse
from typing import Any

from qlm_kernel.cli import output, storeio
from qlm_kernel.cli.backtest import stats_table
from qlm_kernel.formatting import HEADLINE_STATS, stat_text

EXIT_DIFFERS = 8  # `qlm runs reproduce`: the re-run differs (not an error: the answer says what changed)
RUN_STATUSES = ("ok", "error")  # = qlm_kernel.store.runs.RUN_STATUSES (not imported: keeps --help fast)
KEY_STATS = tuple(k for k in HEADLINE_STATS if k != "final_value")  # the list table's stat columns
LIST_HEADERS = ("id", "time (utc)", "strategy", "ver", "dataset", "fp", "return", "sharpe", "max dd",
                "trades", "status", "duration")


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``qlm runs list`` and ``qlm runs show``."""
    p = subparsers.add_parser("runs", parents=[common], help="recorded backtest runs",
                              description="Backtest runs recorded in $QLM_HOME/qlm.db (newest first).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True)
    lst = actions.add_parser("list", parents=[common], help="the newest runs with their key stats")
    lst.add_argument("--limit", type=storeio.count, default=20, metavar="N", help="at most N runs (20)")
    lst.add_argument("--strategy", metavar="NAME", help="only runs of this strategy")
    lst.add_argument("--status", choices=RUN_STATUSES, help="only successful or failed runs")
    lst.set_defaults(run=run_list)
    show = actions.add_parser("show", parents=[common], help="one run: params, settings, stats, error")
    show.add_argument("id", type=storeio.positive_int, metavar="ID", help="run id (see 'qlm runs list')")
    show.set_defaults(run=run_show)
    rep = actions.add_parser("reproduce", parents=[common], help="re-run a run: bit for bit, or what changed",
                             description="Re-run a recorded run with its parameters and settings on its "
                             "recorded data source and the strategy's current file; report bit-for-bit "
                             "equality or what differs (data, code, libraries, results); exit 8 when it "
                             "does not reproduce.")
    rep.add_argument("id", type=storeio.positive_int, metavar="ID", help="run id (see 'qlm runs list')")
    rep.add_argument("--data", metavar="FILE", help="data to use instead of the recorded source (required "
                     "for a run made on an in-memory frame)")
    rep.set_defaults(run=run_reproduce)


# --- commands ---------------------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    """Print the newest runs (table or ``{"runs": [...]}``)."""
    from qlm_kernel.session import list_runs

    runs = list_runs(args.limit, args.strategy, args.status)
    if args.json:
        output.emit_json({"runs": runs})
    elif runs:
        output.emit_text(output.table([list_row(r) for r in runs], headers=LIST_HEADERS))
    else:
        filtered = args.strategy is not None or args.status is not None
        output.note("no runs recorded" + (" matching the filters" if filtered else " yet"))
    return output.EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    """Print one run in full (sections or the JSON record)."""
    from qlm_kernel.session import get_run

    run = get_run(args.id)
    if args.json:
        output.emit_json(run)
    else:
        output.emit_text(describe_run(run))
    return output.EXIT_OK


def run_reproduce(args: argparse.Namespace) -> int:
    """Re-run one run and print the verdict and every difference (or the JSON answer)."""
    from qlm_kernel.session import reproduce

    answer = reproduce(args.id, data=args.data)
    if args.json:
        output.emit_json(answer)
    else:
        lines = [answer["verdict"]]
        for d in answer["differences"]:
            lines.append(f"  {d['what']}: {d['item']}: {d['stored']} -> {d['now']}")
        for key, change in answer["results"]["hashes"].items():
            lines.append(f"  result {key}: {storeio.short(change['stored'], 12)} -> "
                         f"{storeio.short(change['now'], 12)}")
        for key, change in answer["results"]["stats"].items():
            lines.append(f"  stat {key}: {change['stored']!r} -> {change['now']!r}")
        output.emit_text("\n".join(lines))
    return output.EXIT_OK if answer["equal"] else EXIT_DIFFERS


# --- human output -----------------------------------------------------------------------------------


def run_stat(stats: Any, key: str) -> str:
    """One statistic formatted like ``qlm backtest`` does (``-`` when missing)."""
    if not isinstance(stats, dict) or key not in stats:
        return storeio.NONE
    return stat_text(key, stats[key])


def version_label(run: dict[str, Any]) -> str:
    """``v3`` for a linked version, ``#7`` when only the id is known, ``-`` for none."""
    summary = run.get("strategy_version")
    if summary:
        return f"v{summary['version']}"
    vid = run.get("strategy_version_id")
    return storeio.NONE if vid is None else f"#{vid}"


def list_row(run: dict[str, Any]) -> list[str]:
    """One table row of ``qlm runs list``."""
    stats = run.get("stats")
    return [str(run["id"]), storeio.fmt_time(run.get("created_at")), run["strategy"], version_label(run),
            run.get("dataset") or storeio.NONE, storeio.short(run.get("data_fingerprint")),
            *(run_stat(stats, key) for key in KEY_STATS), run["status"],
            storeio.fmt_duration(run.get("duration_s"))]


def key_values(values: Any) -> str:
    """``fast=10, slow=50`` (or ``(none)``) for params and settings."""
    if not isinstance(values, dict) or not values:
        return "(none)"
    return ", ".join(f"{k}={v!r}" for k, v in values.items())


def stats_lines(stats: Any) -> list[str]:
    """The stats as an aligned label/value block (the same table as ``qlm backtest``)."""
    return stats_table(stats if isinstance(stats, dict) else {}).splitlines()


def strategy_line(run: dict[str, Any]) -> str:
    """``strategy: sma_cross v3 (version id 7, sha 1a2b3c4d, by user)`` or without version."""
    summary = run.get("strategy_version")
    if summary:
        return (f"strategy: {run['strategy']} v{summary['version']} (version id {summary['id']}, "
                f"sha {storeio.short(summary['sha256'], 12)}, by {summary['author']})")
    vid = run.get("strategy_version_id")
    suffix = f" (version id {vid})" if vid is not None else " (code not versioned)"
    return f"strategy: {run['strategy']}{suffix}"


def describe_run(run: dict[str, Any]) -> str:
    """Header, strategy version, data, params, settings, stats and the error record if it failed."""
    lines = [
        f"run {run['id']} ({run['status']}) at {storeio.fmt_time(run.get('created_at'))} UTC, "
        f"took {storeio.fmt_duration(run.get('duration_s'))}, source {run.get('source') or storeio.NONE}",
        strategy_line(run),
        f"data: dataset {run.get('dataset') or storeio.NONE}, fingerprint "
        f"{run.get('data_fingerprint') or storeio.NONE}",
        f"params: {key_values(run.get('params'))}",
        f"settings: {key_values(run.get('settings'))}",
        "stats:",
        *stats_lines(run.get("stats")),
    ]
    error = run.get("error")
    if error:
        record = error if isinstance(error, dict) else {"message": str(error)}
        lines += ["", *output.human_error(record).splitlines()]
    return "\n".join(lines)
