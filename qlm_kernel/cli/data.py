"""``qlm data import FILE [--name NAME] [--repair] [--overwrite]``, ``qlm data import-universe FILES...
--name NAME [--symbol-column COL]``, ``qlm data download EXCHANGE SYMBOL... --since DATE [--timeframe TF]
[--until DATE]``, ``qlm data update NAME`` and ``qlm data list``.

``download``/``update`` take ``--exchange-url URL`` (default: ``$QLM_EXCHANGE_URL``), a base URL every API
endpoint of the exchange is moved to (https, or http to 127.0.0.1 only): the tests point it at a local
fake exchange.

A thin skin over `DataManager` (``$QLM_HOME/data``): import validates the file once with
`load_ohlcv` and stores it as Parquet + JSON metadata, so ``qlm backtest --dataset NAME`` loads it
without re-validating.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from qlm_kernel.cli import output
from qlm_kernel.cli.progress import progress_wanted, terminal_size


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
    dl = actions.add_parser("download", parents=[common], help="download OHLCV bars from an exchange (ccxt), "
                            "one dataset per symbol; re-running resumes")
    dl.add_argument("exchange", metavar="EXCHANGE", help="ccxt exchange id, e.g. binance")
    dl.add_argument("symbols", metavar="SYMBOL", nargs="+", help="market symbol, e.g. BTC/USDT")
    dl.add_argument("--timeframe", default="1h", help="bar size, e.g. 1m, 1h, 1d (default: 1h)")
    dl.add_argument("--since", metavar="DATE", help="first bar (ISO date, UTC); needed for a new dataset; "
                    "an existing one resumes after its last bar, and is also filled in back to DATE when "
                    "DATE is before its first bar")
    dl.add_argument("--until", metavar="DATE", help="stop before this time (default: now)")
    _exchange_url(dl)
    dl.set_defaults(run=run_download)
    upd = actions.add_parser("update", parents=[common], help="refresh a downloaded dataset to now")
    upd.add_argument("name", metavar="NAME", help="a dataset made by `qlm data download`")
    upd.add_argument("--until", metavar="DATE", help="stop before this time (default: now)")
    _exchange_url(upd)
    upd.set_defaults(run=run_update)
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


def _exchange_url(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exchange-url", metavar="URL", default=None,
                   help="base URL for the exchange's API (default: $QLM_EXCHANGE_URL, else the exchange's "
                   "own)")


class _DownloadBar:
    """tqdm bar (stderr, TTY only) fed by the download's progress callback: bars done, ETA."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._name: str | None = None

    def update(self, info: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self._bar is None or info.get("name") != self._name:
            self.close()
            columns, lines = terminal_size(sys.stderr)
            self._name = info.get("name")
            self._bar = tqdm(total=info.get("total") or None, file=sys.stderr, leave=False, unit="bar",
                             desc=str(info.get("symbol", "")), ncols=columns, nrows=lines)
        self._bar.n = min(info.get("done", 0), self._bar.total or info.get("done", 0))
        self._bar.set_postfix_str(f"{info.get('reached', '')[:16]}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _options(args: argparse.Namespace) -> dict[str, Any] | None:
    """ccxt options: ``--exchange-url``, else the server option $QLM_EXCHANGE_URL (the session's rule)."""
    from qlm_kernel.session import configured_exchange_options

    return {"api_url": args.exchange_url} if args.exchange_url else configured_exchange_options()


def _report_lines(r: dict[str, Any]) -> list[str]:
    lines = [f"{r['name']}: +{r['rows_added']:,} bars ({r['rows']:,} stored, {r['start']} -> {r['end']})"]
    if r.get("resumed_from"):
        lines.append(f"  resumed after {r['resumed_from']}")
    if r.get("backfilled"):
        lines.append(f"  filled in before the first stored bar: {r['backfilled']:,} bars")
    if r.get("backfill_pending_until"):
        lines.append(f"  the fill-in stopped early: the next download or update goes on up to "
                     f"{r['backfill_pending_until']}")
    if r.get("duplicates_dropped"):
        lines.append(f"  duplicate candles dropped: {r['duplicates_dropped']}")
    for gap in r.get("gaps") or []:
        lines.append(f"  gap (not filled): {gap['from']} -> {gap['to']}, {gap['missing']} bars missing")
    return lines


def run_download(args: argparse.Namespace) -> int:
    """Download SYMBOLs from EXCHANGE into one dataset each and print what was added."""
    from qlm_kernel.session import download

    bar = _DownloadBar(enabled=progress_wanted(args))
    try:
        result = download(args.exchange, list(args.symbols), args.timeframe, since=args.since,
                          until=args.until, progress=bar.update, exchange_options=_options(args))
    finally:
        bar.close()
    if args.json:
        output.emit_json(result)
        return output.EXIT_OK
    lines = [line for r in result["datasets"] for line in _report_lines(r)]
    output.emit_text("\n".join(lines))
    return output.EXIT_OK


def run_update(args: argparse.Namespace) -> int:
    """Refresh dataset NAME from its exchange and print what was added."""
    from qlm_kernel.session import update_dataset

    bar = _DownloadBar(enabled=progress_wanted(args))
    try:
        report = update_dataset(args.name, until=args.until, progress=bar.update,
                                exchange_options=_options(args))
    finally:
        bar.close()
    if args.json:
        output.emit_json(report)
        return output.EXIT_OK
    output.emit_text("\n".join(_report_lines(report)))
    return output.EXIT_OK
