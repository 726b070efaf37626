"""``qlm runs list`` and ``qlm runs show ID``: the backtest runs recorded in the workspace store.

Every ``qlm.backtest`` (and ``qlm backtest``) is recorded with its strategy version, data fingerprint,
parameters, settings and stats or error; these commands read them back (read-only, never creating the
database). ``--json`` prints ``{"runs": [...]}`` / the run record, with ``strategy_version`` added.
"""

from __future__ import annotations

import argparse
from typing import Any

from qlm_kernel.cli import output, storeio
from qlm_kernel.cli.backtest import STAT_FORMATS, format_stat

RUN_STATUSES = ("ok", "error")  # = qlm_kernel.store.runs.RUN_STATUSES (not imported: keeps --help fast)
KEY_STATS = ("total_return", "sharpe", "max_drawdown", "n_trades")
LIST_HEADERS = ("id", "time (utc)", "strategy", "ver", "dataset", "fp", "return", "sharpe", "max dd",
                "trades", "status", "duration")
VERSION_FIELDS = ("id", "strategy", "version", "sha256", "author", "message", "created_at")


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


# --- reading ----------------------------------------------------------------------------------------


def version_summary(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The identity of a strategy version (no code): id, strategy, version, sha256, author, ..."""
    return None if record is None else {k: record.get(k) for k in VERSION_FIELDS}


def versions_of(store: Any, runs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Version summaries by version id for `runs`: one history read per strategy, not one per run."""
    found: dict[int, dict[str, Any]] = {}
    for name in {r["strategy"] for r in runs if r.get("strategy_version_id") is not None}:
        for record in store.strategy_history(name):
            found[record["id"]] = version_summary(record)  # type: ignore[assignment]
    for run in runs:  # a run linked to a version saved under another name
        vid = run.get("strategy_version_id")
        if vid is not None and vid not in found:
            summary = version_summary(store.get_strategy_version(vid))
            if summary is not None:
                found[vid] = summary
    return found


def with_version(run: dict[str, Any], versions: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The run record plus ``strategy_version`` (the linked version's summary, or None)."""
    return {**run, "strategy_version": versions.get(run.get("strategy_version_id"))}  # type: ignore[arg-type]


def load_runs(limit: int, strategy: str | None, status: str | None) -> list[dict[str, Any]]:
    """The newest runs (with version summaries); [] when nothing was recorded yet."""
    with storeio.store() as store:
        if store is None:
            return []
        runs = store.list_runs(limit=limit, strategy=strategy, status=status)
        versions = versions_of(store, runs)
    return [with_version(r, versions) for r in runs]


def load_run(run_id: int) -> dict[str, Any]:
    """One run with its version summary; NOT_FOUND (exit 5) for an unknown id."""
    with storeio.store() as store:
        run = None if store is None else store.get_run(run_id)
        if run is None:
            raise storeio.not_found("run with id", run_id, "list the recorded runs with 'qlm runs list'",
                                    run_id=run_id)
        versions = versions_of(store, [run])
    return with_version(run, versions)


# --- commands ---------------------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    """Print the newest runs (table or ``{"runs": [...]}``)."""
    runs = load_runs(args.limit, args.strategy, args.status)
    if args.json:
        output.emit_json({"runs": storeio.json_safe(runs)})
    elif runs:
        output.emit_text(output.table([list_row(r) for r in runs], headers=LIST_HEADERS))
    else:
        filtered = args.strategy is not None or args.status is not None
        output.note("no runs recorded" + (" matching the filters" if filtered else " yet"))
    return output.EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    """Print one run in full (sections or the JSON record)."""
    run = load_run(args.id)
    if args.json:
        output.emit_json(storeio.json_safe(run))
    else:
        output.emit_text(describe_run(run))
    return output.EXIT_OK


# --- human output -----------------------------------------------------------------------------------


def stat_text(stats: Any, key: str) -> str:
    """One statistic formatted like ``qlm backtest`` does (``-`` when missing)."""
    if not isinstance(stats, dict) or key not in stats:
        return storeio.NONE
    return format_stat(STAT_FORMATS.get(key, ("", "auto"))[1], stats[key])


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
            *(stat_text(stats, key) for key in KEY_STATS), run["status"],
            storeio.fmt_duration(run.get("duration_s"))]


def key_values(values: Any) -> str:
    """``fast=10, slow=50`` (or ``(none)``) for params and settings."""
    if not isinstance(values, dict) or not values:
        return "(none)"
    return ", ".join(f"{k}={v!r}" for k, v in values.items())


def stat_label(key: str) -> str:
    """``Total return`` for ``total_return`` (the labels of ``qlm backtest``)."""
    return STAT_FORMATS.get(key, (key.replace("_", " ").capitalize(), ""))[0]


def stats_lines(stats: Any) -> list[str]:
    """The stats as an aligned label/value block (labels as in ``qlm backtest``)."""
    if not isinstance(stats, dict) or not stats:
        return ["  (none)"]
    rows = [(stat_label(k), stat_text(stats, k)) for k in stats]
    width = max(len(label) for label, _ in rows)
    values = max(len(text) for _, text in rows)
    return [f"  {label.ljust(width)}  {text.rjust(values)}" for label, text in rows]


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
