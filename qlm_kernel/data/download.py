"""Download OHLCV bars from an exchange through CCXT into the workspace's `DataManager`.

One dataset per symbol, named ``dataset_name(exchange, symbol, timeframe)``: ``EXCHANGE_SYMBOL_TIMEFRAME``
with ``/`` and ``:`` in the symbol turned into ``-`` (``binance``, ``BTC/USDT``, ``1h`` ->
``binance_BTC-USDT_1h``). Its metadata keeps the origin under ``"download"`` (exchange, symbol,
timeframe), which ``update`` uses.

Rules:

- paging: ``exchange.fetch_ohlcv(symbol, timeframe, since, limit)`` from ``since`` to ``until`` (exclusive;
  default now), the next page starting one timeframe after the last candle received; an empty page ends
  the history. The exchange's own rate limit is kept (ccxt ``enableRateLimit``, ``exchange.rateLimit``).
- retries: ``RateLimitExceeded`` / ``DDoSProtection``, ``NetworkError``, ``ExchangeNotAvailable`` are
  retried with exponential backoff (``backoff * 2**k``, capped), ``max_retries`` times per page; then a
  ``DataError`` (code ``DOWNLOAD_FAILED``) naming the symbol and the last bar stored.
- never a bar twice: a candle at or before the last accepted bar (a duplicate from the exchange, or an
  overlapping page) is dropped and counted; a candle not yet closed (open time + timeframe > now) is
  not stored, so a resumed download never keeps a partial bar.
- resume: the stored dataset's last bar is where a new download continues. Bars are written every
  ``flush_bars`` bars, at the end, and when the download fails, so an interrupted download keeps what it
  fetched.
- backfill: a ``since`` before the stored dataset's first bar also fetches the bars from ``since`` up to
  that first bar (a later ``since`` changes nothing). Until a backfill has joined the stored bars the
  dataset's metadata keeps where it must end (``download.backfill_until``), so an interrupted backfill
  (deadline, failure, Ctrl-C) is resumed after its last bar by the next download or ``update`` instead
  of leaving a hole; the report says ``backfill_pending_until`` meanwhile.
- gaps (missing timeframe steps between consecutive bars, e.g. exchange downtime) are reported as
  ``{"from", "to", "missing"}`` and never filled.
- a deadline (``time.monotonic()`` seconds; the MCP tool's time limit) is checked after each page: past
  it the download stores what it fetched and stops, its report saying ``"complete": False``; symbols not
  yet started are listed as ``"not_started"``. Calling again resumes.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from qlm_kernel.data.manager import DataManager, validate_name
from qlm_kernel.data.schema import OHLCV_COLUMNS
from qlm_kernel.errors import ConfigError, DataError, SecurityError

Progress = Callable[[dict[str, Any]], None]
PAGE_LIMIT = 1000
RETRYABLE = ("RateLimitExceeded", "DDoSProtection", "NetworkError", "ExchangeNotAvailable", "RequestTimeout")


def dataset_name(exchange: str, symbol: str, timeframe: str) -> str:
    """``binance_BTC-USDT_1h``: exchange, symbol (``/`` and ``:`` -> ``-``) and timeframe joined by ``_``."""
    return validate_name(f"{exchange}_{symbol.replace('/', '-').replace(':', '-')}_{timeframe}")


def to_ms(value: Any, what: str) -> int:
    """Epoch milliseconds of a date (ISO text, datetime, Timestamp, or epoch ms integer); naive = UTC."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"cannot read {what} {value!r} as a date: {exc}", hint="use ISO-8601, e.g. "
                        "2021-01-01 or 2021-01-01T00:00:00Z", code="DATA_TIME", value=str(value)) from None
    if pd.isna(ts):
        raise DataError(f"{what} is not a date: {value!r}", hint="use ISO-8601, e.g. 2021-01-01",
                        code="DATA_TIME", value=str(value))
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


def iso(ms: int) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").isoformat()


def _ccxt() -> Any:
    try:
        import ccxt
    except ImportError as exc:  # pragma: no cover - ccxt is an optional dependency
        raise ConfigError("downloading market data needs the ccxt package", hint="pip install "
                          "'qlm-kernel[ccxt]'", code="MISSING_DEPENDENCY") from exc
    return ccxt


def _check_url(url: str) -> None:
    """https, or plain http to a loopback address only (a local test server)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme == "https" or (parts.scheme == "http" and loopback):
        return
    raise SecurityError(f"refusing the exchange URL {url!r}: use https", hint="use an https:// URL (plain "
                        "http is allowed to 127.0.0.1/localhost only)", code="INSECURE_URL", url=url)


def open_exchange(exchange_id: str, options: dict[str, Any] | None = None) -> Any:
    """A public (no keys) ccxt exchange with ``enableRateLimit=True``. ``options`` is ccxt config, plus
    ``"api_url"``: a base URL every API endpoint of the exchange is moved to (keeping its path), e.g. a
    local fake exchange in tests."""
    ccxt = _ccxt()
    config = dict(options or {})
    api_url = config.pop("api_url", None)
    if exchange_id not in ccxt.exchanges:
        raise ConfigError(f"unknown ccxt exchange {exchange_id!r}", hint="see ccxt.exchanges, e.g. 'binance'",
                          code="UNKNOWN_EXCHANGE", value=exchange_id)
    for secret in ("apiKey", "secret", "password", "privateKey"):
        if secret in config:
            raise ConfigError(f"downloading public market data needs no credentials; drop {secret!r}",
                              hint="remove credentials from exchange_options", code="SECRET_IN_CONFIG")
    opts = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, **config.pop("options", {})}
    exchange = getattr(ccxt, exchange_id)({"enableRateLimit": True, **config, "options": opts})
    if api_url:
        _check_url(str(api_url))
        base = str(api_url).rstrip("/")
        api = exchange.urls["api"]
        if isinstance(api, str):
            exchange.urls["api"] = base
        else:
            exchange.urls["api"] = {
                key: base + "/" + (url.split("://", 1)[-1].split("/", 1)[1]
                                   if "/" in url.split("://", 1)[-1] else "")
                for key, url in api.items()
            }
    return exchange


class _Fetcher:
    """fetch_ohlcv with retries and backoff."""

    def __init__(self, exchange: Any, symbol: str, *, max_retries: int, backoff: float, backoff_cap: float,
                 sleep: Callable[[float], None]) -> None:
        self.exchange, self.symbol = exchange, symbol
        self.max_retries, self.backoff, self.backoff_cap = max_retries, backoff, backoff_cap
        self.sleep = sleep
        self.requests = 0
        self.retries = 0
        ccxt = _ccxt()
        self.retryable = tuple(getattr(ccxt, n) for n in RETRYABLE if hasattr(ccxt, n))

    def page(self, timeframe: str, since: int, limit: int, reached: int | None) -> list[list[Any]]:
        attempt = 0
        while True:
            self.requests += 1
            try:
                return list(self.exchange.fetch_ohlcv(self.symbol, timeframe, since, limit) or [])
            except self.retryable as exc:
                attempt += 1
                if attempt > self.max_retries:
                    where = iso(reached) if reached is not None else "nothing stored"
                    raise DataError(
                        f"downloading {self.symbol} failed after {attempt} attempts at {iso(since)} "
                        f"({type(exc).__name__}: {str(exc)[:200]}); last bar stored: {where}",
                        hint="run the same download again: it resumes after the last stored bar",
                        code="DOWNLOAD_FAILED", symbol=self.symbol, since=iso(since),
                        last_stored=None if reached is None else iso(reached),
                        ccxt_error=type(exc).__name__, attempts=attempt) from None
                self.retries += 1
                self.sleep(min(self.backoff_cap, self.backoff * 2 ** (attempt - 1)))


@dataclass
class _Range:
    """Open times to fetch: ``start`` to ``stop`` (exclusive), after the stored bar ``previous`` (None at
    the head of the history; duplicates and gaps are judged against it). A ``backfill`` range ends at a
    stored bar: the join with it is checked for a gap, and until it is done the dataset's metadata says
    where it stops (``backfill_until``), so an interrupted backfill resumes instead of leaving a hole."""

    start: int
    stop: int
    previous: int | None
    backfill: bool = False


def _plan(stored: pd.DataFrame | None, origin_meta: dict[str, Any], since: Any, end: int, step: int,
          name: str) -> list[_Range]:
    """The ranges a download fetches, in order: a backfill left unfinished, then the bars before the
    first stored one when ``since`` is earlier (a backfill), then everything after the last stored bar."""
    if stored is None or not len(stored):
        if since is None:
            raise DataError(f"no dataset {name!r} yet, so the download needs a start date", hint="pass "
                            "since, e.g. since='2021-01-01' (--since 2021-01-01)", code="DOWNLOAD_SINCE",
                            value=name)
        return [_Range(to_ms(since, "since"), end, None)]
    times = stored.index.as_unit("ms").asi8
    first, last = int(times[0]), int(times[-1])
    ranges = []
    until = origin_meta.get("backfill_until")
    if isinstance(until, int) and first < until:  # resume after the last backfilled bar
        before = times[times < until]
        ranges.append(_Range(int(before[-1]) + step, until, int(before[-1]), backfill=True))
    if since is not None and to_ms(since, "since") < first:
        ranges.append(_Range(to_ms(since, "since"), first, None, backfill=True))
    ranges.append(_Range(last + step, end, last))
    return ranges


def download_symbol(
    manager: DataManager,
    exchange: Any,
    exchange_id: str,
    symbol: str,
    timeframe: str = "1h",
    *,
    since: Any = None,
    until: Any = None,
    limit: int = PAGE_LIMIT,
    flush_bars: int = 20_000,
    max_retries: int = 5,
    backoff: float = 1.0,
    backoff_cap: float = 30.0,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now_ms: Callable[[], int] | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Download ``symbol`` into dataset ``dataset_name(...)`` (resuming after its last bar, and filling
    in before its first when ``since`` is earlier); a report: name, symbol, rows, rows_added,
    backfilled, start/end, resumed_from, pages, requests, retries, duplicates_dropped, unclosed_dropped,
    gaps (of the bars added, incl. the joins with the stored ones), complete."""
    name = dataset_name(exchange_id, symbol, timeframe)
    step = int(exchange.parse_timeframe(timeframe) * 1000)
    clock = now_ms or (lambda: int(time.time() * 1000))
    end = to_ms(until, "until") if until is not None else clock()
    stored = manager.load(name) if name in manager else None
    meta = manager.info(name) if stored is not None else None
    origin = {"exchange": exchange_id, "symbol": symbol, "timeframe": timeframe}
    ranges = _plan(stored, dict((meta or {}).get("download") or {}), since, end, step, name)
    fetcher = _Fetcher(exchange, symbol, max_retries=max_retries, backoff=backoff, backoff_cap=backoff_cap,
                       sleep=sleep)
    after_last = ranges[-1].previous  # the forward range starts after the last stored bar
    resumed = None if after_last is None else iso(after_last)
    report: dict[str, Any] = {"name": name, "symbol": symbol, "exchange": exchange_id, "timeframe": timeframe,
                              "resumed_from": resumed, "pages": 0, "rows_added": 0, "backfilled": 0,
                              "duplicates_dropped": 0, "unclosed_dropped": 0, "gaps": [], "complete": True}
    pending: list[list[float]] = []
    t0 = time.monotonic()
    total_est = sum(max(0, (r.stop - r.start) // step) for r in ranges)
    covered = 0  # bars' worth of the ranges already done (progress)
    open_backfill: int | None = None  # the stop of a backfill under way (kept in the metadata until done)

    def flush() -> None:
        nonlocal stored, pending, meta
        pending_backfill = {} if open_backfill is None else {"backfill_until": open_backfill}
        marker = {"download": {**origin, **pending_backfill}}
        if not pending:
            if meta is not None and meta.get("download") != marker["download"]:
                meta = manager.annotate(name, marker)
            return
        rows = np.asarray(pending, dtype=np.float64)
        frame = pd.DataFrame(rows[:, 1:6], columns=list(OHLCV_COLUMNS),
                             index=pd.DatetimeIndex(pd.to_datetime(rows[:, 0].astype(np.int64), unit="ms",
                                                                   utc=True), name="time"))
        if stored is not None and len(stored):
            frame = pd.concat([stored[list(OHLCV_COLUMNS)], frame]).sort_index()  # a backfill goes first
        meta = manager.register_frame(frame, name, source=f"ccxt:{exchange_id}:{symbol}:{timeframe}",
                                      overwrite=True, extra=marker)
        stored = manager.load(name)
        report["rows_added"] += len(pending)
        pending = []

    try:
        for part in ranges:
            open_backfill = part.stop if part.backfill else None
            last, cursor = part.previous, part.start
            while cursor < part.stop:
                page = fetcher.page(timeframe, cursor, limit, last)
                report["pages"] += 1
                if not page:
                    break
                newest = None
                for candle in sorted(page, key=lambda c: c[0]):
                    t = int(candle[0])
                    newest = t if newest is None else max(newest, t)
                    if t >= part.stop:
                        continue
                    if last is not None and t <= last:
                        report["duplicates_dropped"] += 1
                        continue
                    if t + step > clock():
                        report["unclosed_dropped"] += 1
                        continue
                    if last is not None and t - last > step:  # reported, never filled
                        report["gaps"].append(_gap(last, t, step))
                    vol = candle[5] if len(candle) > 5 and candle[5] is not None else 0.0
                    pending.append([t, *(float(v) for v in candle[1:5]), float(vol)])
                    report["backfilled"] += int(part.backfill)
                    last = t
                if newest is None or newest + step <= cursor:
                    break  # the exchange did not move forward
                cursor = newest + step
                if len(pending) >= flush_bars:
                    flush()
                if progress is not None:
                    done = covered + max(0, min(cursor, part.stop) - part.start) // step
                    elapsed = time.monotonic() - t0
                    left = max(0, total_est - done)
                    eta = elapsed / done * left if done else None
                    progress({"symbol": symbol, "name": name, "done": int(done), "total": int(total_est),
                              "rows_added": report["rows_added"] + len(pending),
                              "reached": iso(min(cursor, part.stop)), "eta_seconds": None if eta is None
                              else round(eta, 1)})
                if deadline is not None and cursor < part.stop and time.monotonic() >= deadline:
                    report["complete"] = False  # stored below; a later call resumes where this stopped
                    break
            if not report["complete"]:
                break
            if part.backfill:
                if last is not None and part.stop - last > step:  # the join with the stored bars
                    report["gaps"].append(_gap(last, part.stop, step))
                open_backfill = None
                flush()  # the backfill is whole: its marker goes
            covered += max(0, (part.stop - part.start) // step)
    finally:
        flush()  # also on failure: the pages fetched so far are kept, a rerun resumes after them
    report["requests"], report["retries"] = fetcher.requests, fetcher.retries
    info = meta or (manager.info(name) if name in manager else None)
    report["rows"] = int(info["rows"]) if info else 0
    report["start"] = info["start"] if info else None
    report["end"] = info["end"] if info else None
    report["file"] = info["file"] if info else None
    report["backfill_pending_until"] = None if open_backfill is None else iso(open_backfill)
    report["gaps"].sort(key=lambda g: g["from"])
    report["gaps_total_missing"] = int(sum(g["missing"] for g in report["gaps"]))
    return report


def _gap(before: int, after: int, step: int) -> dict[str, Any]:
    """Missing timeframe steps between two bars' open times (``from`` and ``to`` are those bars)."""
    return {"from": iso(before), "to": iso(after), "missing": (after - before) // step - 1}


def download(
    manager: DataManager,
    exchange_id: str,
    symbols: list[str] | str,
    timeframe: str = "1h",
    *,
    since: Any = None,
    until: Any = None,
    exchange_options: dict[str, Any] | None = None,
    exchange: Any = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """`download_symbol` for each symbol on one ccxt exchange; ``{"exchange", "timeframe", "datasets"}``."""
    if isinstance(symbols, str):
        symbols = [symbols]
    if not symbols:
        raise DataError("no symbols to download", hint="name at least one, e.g. BTC/USDT",
                        code="DOWNLOAD_SYMBOLS")
    ex = exchange if exchange is not None else open_exchange(exchange_id, exchange_options)
    if not ex.has.get("fetchOHLCV"):
        raise DataError(f"{exchange_id} offers no OHLCV history through ccxt", hint="choose another exchange",
                        code="UNSUPPORTED", value=exchange_id)
    if timeframe not in (getattr(ex, "timeframes", None) or {timeframe: timeframe}):
        raise DataError(f"{exchange_id} has no timeframe {timeframe!r}", hint="one of: "
                        + ", ".join(ex.timeframes), code="DATA_TIMEFRAME", value=timeframe)
    deadline = kwargs.get("deadline")
    reports, not_started = [], []
    for symbol in symbols:
        if deadline is not None and reports and time.monotonic() >= deadline:
            not_started.append(symbol)
            continue
        reports.append(download_symbol(manager, ex, exchange_id, symbol, timeframe, since=since, until=until,
                                       **kwargs))
    out = {"exchange": exchange_id, "timeframe": timeframe, "datasets": reports,
           "complete": not not_started and all(r["complete"] for r in reports)}
    if not_started:
        out["not_started"] = not_started
    return out


def update(manager: DataManager, name: str, *, until: Any = None,
           exchange_options: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Refresh a downloaded dataset to ``until`` (default now), from the origin in its metadata."""
    info = manager.info(name)
    origin = info.get("download")
    if not isinstance(origin, dict):
        raise DataError(f"dataset {name!r} was not downloaded from an exchange, so it cannot be updated",
                        hint="only datasets made by `qlm data download` / qlm.download can be updated",
                        code="NOT_DOWNLOADED", value=name)
    ex = open_exchange(origin["exchange"], exchange_options)
    return download_symbol(manager, ex, origin["exchange"], origin["symbol"], origin["timeframe"],
                           until=until, **kwargs)
