"""``qlm strategies list``: the strategies a bare name resolves to, with their parameters;
``qlm strategies history NAME``: the versions of a strategy's code recorded in the store.

``list`` uses `available_strategies` ($QLM_HOME/strategies first, then the bundled examples) and loads
each file to read its `Strategy.params_spec`. A file that fails to load is listed with its error record
rather than failing the whole listing: that is exactly the file the user needs to see.

``history`` reads the store read-only (never creating it): every version with author, time, sha and
message; ``--show-code VERSION`` prints that version's code (raw, so it can be redirected to a file).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from qlm_kernel.cli import output, storeio

HISTORY_HEADERS = ("version", "id", "created (utc)", "author", "sha256", "size", "message")


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``qlm strategies list`` and ``qlm strategies history``."""
    p = subparsers.add_parser("strategies", parents=[common], help="list strategies and their versions",
                              description="Strategies in $QLM_HOME/strategies and the bundled examples; "
                              "their code versions recorded in $QLM_HOME/qlm.db.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True)
    lst = actions.add_parser("list", parents=[common], help="names, files and parameters")
    lst.set_defaults(run=run_list)
    history = actions.add_parser("history", parents=[common], help="recorded versions of a strategy's code",
                                 description="Every recorded version of NAME's code, oldest first.")
    history.add_argument("name", metavar="NAME", help="strategy name as recorded (see 'qlm runs list')")
    history.add_argument("--show-code", type=version_ref, metavar="VERSION",
                         help="print the code of version VERSION (a number or 'latest'); with --json the "
                         "document gains a 'version' record that includes the code")
    history.set_defaults(run=run_history)


def strategy_entries() -> list[dict[str, Any]]:
    """One JSON-safe entry per strategy name (`describe_strategy_files`); user prints kept off stdout."""
    from qlm_kernel.session.strategies import describe_strategy_files

    with output.user_code_stdout():
        return describe_strategy_files()


def describe_param(spec: dict[str, Any]) -> str:
    """``fast=10 [2..200]`` or ``kind='sma' {sma,ema}`` for the human table."""
    text = f"{spec['name']}={spec['default']!r}"
    if spec.get("choices"):
        return text + " {" + ",".join(map(str, spec["choices"])) + "}"
    if spec.get("min") is not None or spec.get("max") is not None:
        lo = "" if spec.get("min") is None else spec["min"]
        hi = "" if spec.get("max") is None else spec["max"]
        return text + f" [{lo}..{hi}]"
    return text


def run_list(args: argparse.Namespace) -> int:
    """Print the strategies (table or JSON)."""
    entries = strategy_entries()
    if args.json:
        output.emit_json({"strategies": entries})
        return output.EXIT_OK
    rows = []
    for e in entries:
        if "error" in e:
            detail = f"ERROR {e['error']['type']}: {e['error']['message']}"
            rows.append((e["name"], "-", e["origin"], detail, e["path"]))
        else:
            params = ", ".join(describe_param(s) for s in e["params"].values()) or "(none)"
            rows.append((e["name"], e["class"], e["origin"], params, e["path"]))
    if not rows:
        output.emit_text("no strategies found; write one in $QLM_HOME/strategies/")
        return output.EXIT_OK
    output.emit_text(output.table(rows, headers=("name", "class", "origin", "params", "path")))
    return output.EXIT_OK


# --- history ----------------------------------------------------------------------------------------


def version_ref(text: str) -> int | str:
    """argparse type of ``--show-code``: a version number >= 1 or ``latest``."""
    return "latest" if text.strip().lower() == "latest" else storeio.positive_int(text)


def load_history(name: str, show: int | str | None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The versions of `name` (no code) and, with `show`, that version with its code (NOT_FOUND if absent)."""
    from qlm_kernel.session import history

    versions = history.strategy_versions(name)
    return versions, None if show is None else history.strategy_version(name, show)


def run_history(args: argparse.Namespace) -> int:
    """Print the version history (table, the code of one version, or one JSON document)."""
    versions, record = load_history(args.name, args.show_code)
    if args.json:
        doc: dict[str, Any] = {"strategy": args.name, "versions": versions}
        if record is not None:
            doc["version"] = record
        output.emit_json(doc)
    elif record is not None:
        when = storeio.fmt_time(record["created_at"])
        output.note(f"# {args.name} v{record['version']} ({record['author']}, {when} UTC, "
                    f"sha256 {storeio.short(record['sha256'], 12)})")
        sys.stdout.write(record["code"])
        sys.stdout.flush()
    elif versions:
        output.emit_text(output.table([history_row(v) for v in versions], headers=HISTORY_HEADERS))
    else:
        output.note(f"no versions of {args.name!r} recorded" + known_names_hint())
    return output.EXIT_OK


def history_row(version: dict[str, Any]) -> list[str]:
    """One table row of ``qlm strategies history``."""
    return [f"v{version['version']}", str(version["id"]), storeio.fmt_time(version.get("created_at")),
            version["author"], storeio.short(version["sha256"], 12), f"{version.get('size') or 0:,}",
            version.get("message") or storeio.NONE]


def known_names_hint() -> str:
    """``; recorded strategies: a, b`` so a mistyped name is easy to fix (empty when there are none)."""
    from qlm_kernel.session import history

    names = [s["name"] for s in history.versioned_strategies()]
    return f"; recorded strategies: {', '.join(names)}" if names else ""
