"""Workspace datasets and built-in samples, as every front end lists and imports them."""

from __future__ import annotations

import os
import time
from typing import Any

from qlm_kernel.data.samples import SAMPLE_KINDS, sample_catalogue
from qlm_kernel.jsonsafe import json_safe
from qlm_kernel.session.limits import USER, Limits
from qlm_kernel.session.spec import DataSource
from qlm_kernel.workspace.data import SAMPLE_EXAMPLE, SAMPLE_FIELDS, data_manager


def list_datasets() -> dict[str, Any]:
    """``{"root", "datasets": [metadata...], "samples": {"kinds", "catalogue", "fields", "example"}}``; the
    catalogue gives each sample kind's source, bar size, span, rows and licence. ``datasets`` holds the
    single datasets (``kind`` "dataset") then the universes (``kind`` "universe": ``symbols``,
    ``rows_per_symbol``, ``start``/``end`` of the union of their bars, ``rows`` = bars of that union)."""
    manager = data_manager()
    return {
        "root": str(manager.root),
        "datasets": json_safe(manager.list()),
        "samples": {
            "kinds": list(SAMPLE_KINDS),
            "catalogue": sample_catalogue(),
            "fields": list(SAMPLE_FIELDS),
            "example": dict(SAMPLE_EXAMPLE),
        },
    }


def analyze_market(data: Any = None, *, dataset: str | None = None, sample: dict[str, Any] | None = None,
                   window: int = 250, limits: Limits = USER) -> dict[str, Any]:
    """Trend strength, volatility regime, Hurst exponent, autocorrelation and return distribution of the
    data (`qlm_kernel.analysis.analyze_market_structure`), with ``dataset`` and ``sample`` echoed."""
    from qlm_kernel.analysis import analyze_market_structure

    source = DataSource.of(data, dataset=dataset, sample=sample, limits=limits)
    frame, name = source.resolve(limits)
    return {"dataset": name, "sample": source.sample, **analyze_market_structure(frame, window=int(window))}


def import_dataset(
    path: str | os.PathLike[str], name: str | None = None, *, repair: bool = False, overwrite: bool = False
) -> dict[str, Any]:
    """Validate a CSV/Parquet file once and store it as a workspace dataset; its metadata."""
    return json_safe(data_manager().import_file(path, name, repair=repair, overwrite=overwrite))


def import_universe(
    source: list[str | os.PathLike[str]] | dict[str, Any] | str | os.PathLike[str], name: str, *,
    symbol_column: str = "symbol", repair: bool = False, overwrite: bool = False,
) -> dict[str, Any]:
    """Validate several files (list: symbol = file stem; dict: symbol -> file) or one long-format file
    (a ``symbol_column``) and store them as universe ``name``; its record (symbols, rows per symbol, span)."""
    return json_safe(data_manager().import_universe(source, name, symbol_column=symbol_column, repair=repair,
                                                    overwrite=overwrite))


EXCHANGE_URL_VAR = "QLM_EXCHANGE_URL"
"""Server option: a base URL every exchange API endpoint is moved to (a mirror, a local test exchange).
Set by whoever starts the process, never by a request (an assistant cannot point downloads elsewhere)."""


def configured_exchange_options() -> dict[str, Any] | None:
    """``{"api_url": $QLM_EXCHANGE_URL}`` when that server option is set, else None."""
    url = os.environ.get(EXCHANGE_URL_VAR)
    return {"api_url": url} if url else None


def download(
    exchange: str, symbols: list[str] | str, timeframe: str = "1h", since: Any = None, until: Any = None, *,
    progress: Any = None, exchange_options: dict[str, Any] | None = None, limit: int = 1000,
    max_retries: int = 5, backoff: float = 1.0, time_limit: float | None = None,
) -> dict[str, Any]:
    """Download OHLCV bars of ``symbols`` from ccxt ``exchange`` into one dataset per symbol
    (``binance_BTC-USDT_1h``), resuming after the last stored bar; ``{"exchange", "timeframe", "datasets":
    [report...], "complete"}`` with each dataset's rows added, duplicates dropped and gaps (reported, never
    filled). ``progress(info)`` gets ``done``/``total`` bars and ``eta_seconds``; ``exchange_options`` is
    ccxt config plus ``"api_url"`` (a base URL for all of the exchange's endpoints, e.g. a local test
    server); past ``time_limit`` seconds it stores what it has and stops (``"complete": False``)."""
    from qlm_kernel.data.download import download as run

    deadline = None if time_limit is None else time.monotonic() + float(time_limit)
    return json_safe(run(data_manager(), exchange, symbols, timeframe, since=since, until=until,
                         exchange_options=exchange_options, progress=progress, limit=limit,
                         max_retries=max_retries, backoff=backoff, deadline=deadline))


def update_dataset(name: str, until: Any = None, *, progress: Any = None,
                   exchange_options: dict[str, Any] | None = None, limit: int = 1000, max_retries: int = 5,
                   backoff: float = 1.0) -> dict[str, Any]:
    """Refresh downloaded dataset ``name`` to ``until`` (default now) from the exchange, symbol and
    timeframe in its metadata; the same report as one entry of `download`."""
    from qlm_kernel.data.download import update

    return json_safe(update(data_manager(), name, until=until, exchange_options=exchange_options,
                            progress=progress, limit=limit, max_retries=max_retries, backoff=backoff))
