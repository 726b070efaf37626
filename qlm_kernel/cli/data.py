"""``qlm data import FILE [--name NAME] [--repair] [--overwrite]`` and ``qlm data list``.

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


def describe_repair(item: Any) -> str:
    """``sorted (rows_moved=2, ...)`` from a repair record ``{"action": ..., ...}``."""
    if not isinstance(item, dict):
        return str(item)
    details = ", ".join(f"{k}={v}" for k, v in item.items() if k != "action")
    return f"{item.get('action', '?')}" + (f" ({details})" if details else "")


def dataset_rows(metas: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Table rows (name, rows, start, end, source) of dataset metadata dicts."""
    return [
        (
            m.get("name", "?"),
            f"{m.get('rows', 0):,}",
            str(m.get("start", "")),
            str(m.get("end", "")),
            str(m.get("source", "")),
        )
        for m in metas
    ]


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
