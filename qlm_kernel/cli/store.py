"""``qlm store prune``: apply the retention settings now (a skin over `qlm_kernel.session.retention`).

A writable store already prunes by itself at most once a day when it opens; this runs it at once, or
only counts (``--dry-run``). ``--events-days``, ``--events-rows``, ``--trials-days`` and ``--heal-days``
replace the configured values for this run (a number, or ``forever`` to keep everything). The settings
themselves come from ``QLM_RETAIN_EVENTS_DAYS``, ``QLM_RETAIN_EVENTS_ROWS``, ``QLM_RETAIN_TRIALS_DAYS``,
``QLM_RETAIN_HEAL_DAYS`` or the store config's ``retention.*`` keys; defaults: events 30 days and at
most 1,000,000 rows, trials and heal steps kept.
"""

from __future__ import annotations

import argparse
from typing import Any

from qlm_kernel.cli import output

OVERRIDES = (  # flag, setting, what
    ("--events-days", "events_days", "keep events this many days"),
    ("--events-rows", "events_max_rows", "keep at most this many events"),
    ("--trials-days", "trials_days", "keep the trials of jobs finished this many days ago"),
    ("--heal-days", "heal_steps_days", "keep the steps of heal sessions ended this many days ago"),
)


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``qlm store prune``."""
    p = subparsers.add_parser("store", parents=[common], help="the workspace database: prune old records",
                              description="Maintenance of $QLM_HOME/qlm.db.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True)
    prune = actions.add_parser("prune", parents=[common], help="delete old events, trials and heal steps",
                               description="Apply the retention settings now (the store also does it at "
                               "most once a day when it opens).")
    prune.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    for flag, setting, what in OVERRIDES:
        prune.add_argument(flag, dest=setting, metavar="N|forever", help=f"{what} (this run only)")
    prune.set_defaults(run=run_prune)


def run_prune(args: argparse.Namespace) -> int:
    """Prune (or count) and print what went, with the settings applied."""
    from qlm_kernel.session.retention import prune_store

    overrides = {setting: getattr(args, setting) for _, setting, _ in OVERRIDES
                 if getattr(args, setting) is not None}
    reply = prune_store(dry_run=args.dry_run, **overrides)
    if args.json:
        output.emit_json(reply)
    elif not reply["database"]:
        output.note("no database yet: nothing to prune")
    else:
        output.emit_text(summary(reply))
    return output.EXIT_OK


def summary(reply: dict[str, Any]) -> str:
    """``pruned 120 events, 0 trials, 0 heal steps`` and the settings, one per line."""
    verb = "would prune" if reply["dry_run"] else "pruned"
    settings = reply["settings"]

    def days(value: Any) -> str:
        return "kept" if value is None else f"{value:g} days"

    rows = settings["events_max_rows"]
    return "\n".join([
        f"{verb} {reply['events']:,} events, {reply['trials']:,} trials, {reply['heal_steps']:,} heal steps",
        f"events: {days(settings['events_days'])}"
        + ("" if rows is None else f", at most {rows:,} rows"),
        f"trials of finished jobs: {days(settings['trials_days'])}",
        f"steps of ended heal sessions: {days(settings['heal_steps_days'])}",
    ])
