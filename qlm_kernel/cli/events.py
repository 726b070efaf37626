"""``qlm events tail``: read (and with ``--follow``, keep reading) the store's persistent event log.

Without ``--after`` it prints the last N events (``--limit``, default 20), oldest first; with
``--after ID`` the first N events whose id is greater than ID. ``--topic`` takes glob patterns
(``job.*``; repeatable, any may match). ``--json`` prints one JSON document: the list of events.

``--follow`` then polls for new events every ``--interval`` seconds until Ctrl-C (exit 0) or
``--max-seconds``; with ``--follow --json`` the output is JSON Lines — one JSON event per line, flushed
as it arrives — not one document. A missing database is waited for; the log is opened read-only.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from qlm_kernel.cli import output, storeio

PAGE = 1000  # events fetched per query
DEFAULT_INTERVAL = 1.0
TAIL_HEADERS = ("id", "time (utc)", "topic", "source", "payload")
PAYLOAD_WIDTH = 120
FOLLOW_EPILOG = ("With --follow --json the output is JSON Lines (one event object per line, flushed as it "
                 "arrives) instead of one JSON document. With --follow, --limit bounds only the backlog "
                 "printed first when --after is not given; with --after every later event is printed.")

Emit = Callable[[dict[str, Any]], None]


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``qlm events tail``."""
    p = subparsers.add_parser("events", parents=[common], help="the persistent event log",
                              description="Events recorded in $QLM_HOME/qlm.db (runs, jobs, system).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True)
    tail = actions.add_parser("tail", parents=[common], help="print recent events; --follow for new ones",
                              description="Print events, oldest first: the last N, or those after an id.",
                              epilog=FOLLOW_EPILOG)
    tail.add_argument("--after", type=storeio.count, metavar="ID", help="only events with an id above ID")
    tail.add_argument("--limit", type=storeio.count, default=20, metavar="N", help="at most N events (20)")
    tail.add_argument("--topic", action="append", metavar="PATTERN", dest="topics",
                      help="only topics matching this glob, e.g. 'job.*' (repeatable)")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new events (Ctrl-C stops)")
    tail.add_argument("--interval", type=storeio.seconds, metavar="S",
                      help=f"with --follow: seconds between polls ({DEFAULT_INTERVAL:g})")
    tail.add_argument("--max-seconds", type=storeio.seconds, metavar="S",
                      help="with --follow: stop after S seconds (exit 0)")
    tail.set_defaults(run=run_tail)


# --- reading ----------------------------------------------------------------------------------------


def read_once(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The events of a plain ``tail`` (no --follow): after --after, or the last --limit."""
    from qlm_kernel.session.history import tail_events

    if args.limit == 0:
        return []
    return tail_events(args.after, args.limit, args.topics)["events"]


# --- commands ---------------------------------------------------------------------------------------


def check_options(args: argparse.Namespace) -> None:
    """Refuse follow-only options without --follow (they would be silently ignored)."""
    if not args.follow and (args.interval is not None or args.max_seconds is not None):
        raise output.UsageError("--interval and --max-seconds only apply with --follow")


def run_tail(args: argparse.Namespace) -> int:
    """Print events once (table or a JSON list), or follow the log (lines or JSON Lines)."""
    check_options(args)
    if args.follow:
        return follow(args, emit_json_line if args.json else emit_line)
    events = read_once(args)
    if args.json:
        output.emit_json(events)
    elif events:
        output.emit_text(output.table([event_row(e) for e in events], headers=TAIL_HEADERS))
    else:
        output.note("no events" + (" matching the filters" if args.topics or args.after else " recorded yet"))
    return output.EXIT_OK


def follow(args: argparse.Namespace, emit: Emit) -> int:
    """Print the backlog, then poll for new events until Ctrl-C or --max-seconds; exit 0 either way.
    A workspace without a database yet is waited for (each poll reads it afresh, read-only)."""
    from qlm_kernel.session.history import tail_events

    deadline = None if args.max_seconds is None else time.monotonic() + args.max_seconds
    interval = args.interval or DEFAULT_INTERVAL
    if not storeio.db_path().is_file():
        output.note(f"waiting for {storeio.db_path()} to be created...")
    try:
        if args.after is not None:
            last = args.after
        elif args.limit == 0:
            last = tail_events(-1, 1, args.topics)["last_id"]
        else:
            backlog = tail_events(None, args.limit, args.topics)
            for event in backlog["events"]:
                emit(event)
            last = backlog["last_id"]
        while True:
            page = tail_events(last, PAGE, args.topics)
            for event in page["events"]:
                emit(event)
            last = page["last_id"]
            if len(page["events"]) < PAGE and pause(deadline, interval):
                break
    except KeyboardInterrupt:  # the normal way to stop following
        pass
    return output.EXIT_OK


def pause(deadline: float | None, interval: float) -> bool:
    """Sleep until the next poll; True when the deadline has passed (stop), without sleeping past it."""
    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0:
        return True
    time.sleep(interval if remaining is None else min(interval, remaining))
    return False


# --- output -----------------------------------------------------------------------------------------


def event_row(event: dict[str, Any]) -> list[str]:
    """One table row: id, time (ms), topic, source and the payload as compact JSON."""
    return [str(event["id"]), storeio.fmt_time(event.get("created_at"), millis=True), event["topic"],
            event.get("source") or storeio.NONE, storeio.compact(event.get("payload"), PAYLOAD_WIDTH)]


def emit_line(event: dict[str, Any]) -> None:
    """One followed event for humans (fixed-width columns, since the table cannot be aligned ahead)."""
    ident, when, topic, source, payload = event_row(event)
    output.emit_text(f"{ident:>6}  {when}  {topic:<24}  {source:<12}  {payload}")


def emit_json_line(event: dict[str, Any]) -> None:
    """One followed event as a JSON line (JSON Lines), flushed immediately."""
    output.emit_json(storeio.json_safe(event))
