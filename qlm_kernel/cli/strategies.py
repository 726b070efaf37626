"""``qlm strategies list``: the strategies a bare name resolves to, with their parameters.

Uses `available_strategies` ($QLM_HOME/strategies first, then the bundled examples) and loads each
file to read its `Strategy.params_spec`. A file that fails to load is listed with its error record
rather than failing the whole listing: that is exactly the file the user needs to see.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qlm_kernel.cli import output
from qlm_kernel.errors import QLMError


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``qlm strategies list``."""
    p = subparsers.add_parser("strategies", parents=[common], help="list available strategies",
                              description="Strategies in $QLM_HOME/strategies and the bundled examples.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True)
    lst = actions.add_parser("list", parents=[common], help="names, files and parameters")
    lst.set_defaults(run=run_list)


def strategy_entries() -> list[dict[str, Any]]:
    """One JSON-safe entry per strategy name: name, class, origin, path, doc, params (or error)."""
    from qlm_kernel.strategy import available_strategies, examples_dir, load_strategy

    examples = examples_dir().resolve()
    entries = []
    for name, path in available_strategies().items():
        entry: dict[str, Any] = {
            "name": name,
            "path": str(path),
            "origin": "examples" if Path(path).parent == examples else "workspace",
        }
        try:
            with output.user_code_stdout():
                info = load_strategy(path).info()
        except QLMError as err:
            record = err.to_dict()
            record.pop("traceback", None)
            entry["error"] = record
        else:
            entry.update({"class": info["class"], "doc": info["doc"], "params": info["params"]})
        entries.append(entry)
    return entries


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
