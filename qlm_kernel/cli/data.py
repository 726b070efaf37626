"""``qlm data import FILE [--name NAME] [--repair] [--overwrite]``, ``qlm data import-universe FILES...
--name NAME [--symbol-column COL]`` and ``qlm data list``.

A thin skin over `DataManager` (``$QLM_HOME/data``): import validates the file once with
`load_ohlcv` and stores it as Parquet + JSON metadata, so ``qlm backtest --dataset NAME`` loads it
without re-validating.
"""

from __future__ import annotations

import argparse
from typing import Any

from qlm_kernel.cli import output


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``qlm data import`` and ``qlm data list``."""
    p = subparsers.add_parser(
        "data",
        parents=[common],
        help="import and list datasets",
        description="Validated datasets in $QLM_HOME/data.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True)
    imp = actions.add_parser("import", parents=[common], help="validate a CSV/Parquet file and store it")
    imp.add_argument("file", metavar="FILE", help="CSV (optionally .gz) or Parquet OHLCV file")
    imp.add_argument("--name", metavar="NAME", help="dataset name (default: the file name without extension)")
    imp.add_argument(
        "--repair",
        action="store_true",
        help="sort rows by time and drop duplicate timestamps instead of refusing the file",
    )
    imp.add_argument("--overwrite", action="store_true", help="replace an existing dataset of that name")
    imp.set_defaults(run=run_import)
    uni = actions.add_parser("import-universe", parents=[common], help="validate several files (or one "
                             "long-format file) and store them as one universe")
    uni.add_argument("files", metavar="FILE", nargs="+", help="one file per symbol (symbol = file name "
                     "without extension), or ONE long-format file with a symbol column")
    uni.add_argument("--name", metavar="NAME", required=True, help="universe name")
    uni.add_argument("--symbol-column", metavar="COL", default="symbol",
                     help="the symbol column of a long-format file (default: symbol)")
    uni.add_argument("--repair", action="store_true", help="sort rows by time and drop duplicate "
                     "(symbol, time) rows, keeping the last, instead of refusing the file")
    uni.add_argument("--overwrite", action="store_true", help="replace an existing universe of that name")
    uni.set_defaults(run=run_import_universe)
    lst = actions.add_parser("list", parents=[common], help="stored datasets")
    lst.set_defaults(run=run_list)


def run_import(args: argparse.Namespace) -> int:
    """Import FILE as a dataset and print its metadata."""
    from qlm_kernel.session import import_dataset

    meta = import_dataset(args.file, args.name, repair=args.repair, overwrite=args.overwrite)
    if args.json:
        output.emit_json(meta)
        return output.EXIT_OK
    lines = [
        f"imported dataset {meta['name']}: {meta['rows']:,} rows, {meta['start']} -> {meta['end']}",
        f"  file: {meta['file']}",
        f"  fingerprint: {meta['fingerprint']}",
    ]
    lines += [f"  repaired: {describe_repair(item)}" for item in meta.get("repairs") or []]
    if meta.get("volume_missing"):
        lines.append("  note: the file has no volume column; volume is 0.0")
    lines.append(f"use it with: qlm backtest STRATEGY --dataset {meta['name']}")
    output.emit_text("\n".join(lines))
    return output.EXIT_OK


def run_import_universe(args: argparse.Namespace) -> int:
    """Import FILES (or one long-format file) as a universe and print its record."""
    from qlm_kernel.session import import_universe

    source = args.files[0] if len(args.files) == 1 else list(args.files)
    meta = import_universe(source, args.name, symbol_column=args.symbol_column, repair=args.repair,
                           overwrite=args.overwrite)
    if args.json:
        output.emit_json(meta)
        return output.EXIT_OK
    symbols = meta["symbols"]
    lines = [f"imported universe {meta['name']}: {len(symbols)} symbols, {meta['rows']:,} bars (union), "
             f"{meta['start']} -> {meta['end']}", f"  fingerprint: {meta['fingerprint']}"]
    for sym in symbols:
        member = meta["members"][sym]
        lines.append(f"  {sym}: {member['rows']:,} rows, {member['start']} -> {member['end']}")
        lines += [f"    repaired: {describe_repair(item)}" for item in member.get("repairs") or []]
    lines.append(f"load it with: qlm.load_universe({meta['name']!r})")
    output.emit_text("\n".join(lines))
    return output.EXIT_OK


def describe_repair(item: Any) -> str:
    """``sorted (rows_moved=2, ...)`` from a repair record ``{"action": ..., ...}``."""
    if not isinstance(item, dict):
        return str(item)
    details = ", ".join(f"{k}={v}" for k, v in item.items() if k != "action")
    return f"{item.get('action', '?')}" + (f" ({details})" if details else "")


def dataset_rows(metas: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Table rows (name, rows, start, end, source) of dataset metadata dicts (a universe's source: its
    symbols; its rows: the bars of the union of their timestamps)."""
    return [
        (
            m.get("name", "?"),
            f"{m.get('rows', 0):,}",
            str(m.get("start", "")),
            str(m.get("end", "")),
            str(m.get("source", "")) if m.get("kind") != "universe" else universe_label(m),
        )
        for m in metas
    ]


def universe_label(meta: dict[str, Any]) -> str:
    """``universe: 3 symbols (A, B, C)`` (at most six symbols shown)."""
    symbols = list(meta.get("symbols") or [])
    shown = ", ".join(symbols[:6]) + (", ..." if len(symbols) > 6 else "")
    return f"universe: {len(symbols)} symbols ({shown})"


def run_list(args: argparse.Namespace) -> int:
    """Print the workspace's datasets (table or JSON)."""
    from qlm_kernel.session import list_datasets

    listing = list_datasets()
    metas, root = listing["datasets"], listing["root"]
    samples = listing["samples"]["catalogue"]
    if args.json:
        output.emit_json({"root": root, "datasets": metas, "samples": samples})
        return output.EXIT_OK
    if metas:
        headers = ("name", "rows", "start", "end", "source")
        output.emit_text(output.table(dataset_rows(metas), headers=headers))
    else:
        output.emit_text(f"no datasets in {root}; add one with: qlm data import FILE")
    output.emit_text("\nbundled samples (--sample KIND):")
    output.emit_text(output.table(sample_rows(samples), headers=("kind", "bar", "span", "rows", "source",
                                                                  "licence")))
    return output.EXIT_OK


def sample_rows(samples: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Table rows (kind, bar, span, rows, source, licence) of the sample catalogue."""
    return [
        (str(s["kind"]), str(s["bar"]), str(s["span"]),
         f"{s['rows']:,}" if isinstance(s["rows"], int) else str(s["rows"]), str(s["source"]),
         str(s["licence"]))
        for s in samples
    ]
