"""`paper_trade`: run a strategy on a feed through a handler, persisted bar by bar, resumable after a crash.

Only the bars seen so far reach the strategy: at every bar its signals are recomputed on the
history up to that bar (``window`` limits it to the last N bars for long live sessions; indicators
with infinite memory such as Wilder's RSI then differ slightly from a full-history backtest).

Persistence: each processed bar's orders, fills, equity mark and the handler's state snapshot are
written to the store in one transaction. ``resume=<session_id>`` reloads the last snapshot, re-reads
the feed's already processed bars as history without trading, and continues; orders are keyed by
deterministic client ids (``<session>-<bar>-e|x``) that are UNIQUE in the store, so a restarted
session never places an order twice.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from qlm_kernel.engine.settings import BacktestSettings
from qlm_kernel.errors import ConfigError, ExecutionError, QLMError
from qlm_kernel.execution.base import ExecutionHandler
from qlm_kernel.execution.clock import SimulatedClock, WallClock
from qlm_kernel.execution.feeds import Bar, DataFrameFeed
from qlm_kernel.execution.paper import DEFAULT_SLIPPAGE
from qlm_kernel.execution.replay import (
    bus_publisher,
    default_paper_handler,
    paper_settings,
    refuse_handler_options,
    resolve_paper_strategy,
    risk_limits,
    strategy_label,
)
from qlm_kernel.execution.result import PaperResult
from qlm_kernel.execution.risk import RiskLimits
from qlm_kernel.execution.runner import PaperRunner
from qlm_kernel.execution.signals import IncrementalSignals
from qlm_kernel.execution.types import Fill, Order


class StoreJournal:
    """Writes each processed bar of one session to the store (one transaction per bar)."""

    def __init__(self, store: Any, session_id: str) -> None:
        self.store = store
        self.session_id = session_id

    def bar_done(
        self,
        bar: int,
        time: Any,
        orders: list[Order],
        fills: list[Fill],
        state: dict[str, Any],
        summary: dict[str, Any],
    ) -> None:
        """Persist one bar."""
        self.store.paper_bar_done(
            self.session_id,
            bar,
            time,
            [o.to_dict() for o in orders],
            [f.to_dict() for f in fills],
            state,
            summary,
        )


def _feed(feed: Any, stop: threading.Event | None) -> Any:
    if isinstance(feed, pd.DataFrame):
        return DataFrameFeed(feed, stop=stop)
    if isinstance(feed, DataFrameFeed):
        if stop is not None and feed.stop is None:
            feed.stop = stop
        return feed
    if not isinstance(feed, Iterable):
        raise ConfigError(
            f"feed must be a DataFrame, a DataFrameFeed or an iterable of Bars, got {type(feed).__name__}",
            hint="e.g. paper_trade(strategy, df) or a CCXTFeed",
            setting="feed",
        )
    return feed


def paper_trade(
    strategy: Any,
    feed: Any,
    handler: ExecutionHandler | None = None,
    *,
    symbol: str = "ASSET",
    session_id: str | None = None,
    resume: str | None = None,
    store: Any = None,
    record: bool = True,
    risk: RiskLimits | dict[str, Any] | None = None,
    window: int | None = None,
    publish: bool = True,
    stop: threading.Event | None = None,
    on_bar: Callable[[dict[str, Any]], Any] | None = None,
    latency: float | None = None,
    slippage: float | None = None,
    fees: float | None = None,
    fixed_fees: float | None = None,
    max_participation: float | None = None,
    **kwargs: Any,
) -> PaperResult:
    """Paper-trade ``strategy`` on ``feed`` through ``handler``; returns the session's `PaperResult`.

    ``feed``: a DataFrame or `DataFrameFeed` (replayed on the simulated clock, deterministic) or any
    iterable of `Bar`s (live, wall clock). ``handler``: default a `PaperExecutionHandler` built from
    ``latency`` (0.1 s), ``slippage`` (0.0005), ``fees``, ``fixed_fees``, ``max_participation`` and
    ``init_cash``; those may not be given together with a handler. Other keywords are settings
    (size, size_type, integer, direction, sl_stop, tp_stop, tsl_stop, close_at_end) or strategy
    params. ``risk``: `RiskLimits` or a dict. ``record=False`` keeps the session out of the store
    (no resume). ``stop`` (an Event) ends the session after the current bar, status 'stopped'.
    Publishes paper.session.started|stopped, paper.order, paper.fill, paper.position, paper.pnl and
    paper.order.rejected (risk or handler refusals) when ``publish``.
    """
    refuse_handler_options(
        handler,
        latency=latency,
        slippage=slippage,
        fees=fees,
        fixed_fees=fixed_fees,
        max_participation=max_participation,
        init_cash=kwargs.get("init_cash"),
    )
    settings, params = paper_settings(
        dict(kwargs),
        fees=fees or 0.0,
        fixed_fees=fixed_fees or 0.0,
        slippage=DEFAULT_SLIPPAGE if slippage is None else slippage,
    )
    strat = resolve_paper_strategy(strategy, params)
    source = _feed(feed, stop)
    live = bool(getattr(source, "live", True))
    if handler is None:
        handler = default_paper_handler(
            settings, latency, max_participation, WallClock() if live else SimulatedClock()
        )
    limits = risk_limits(risk)
    label = strategy_label(strat)
    config = {
        "strategy": label,
        "source_hash": getattr(type(strat), "source_hash", None),
        "params": strat.params,
        "settings": settings.to_dict(),
        "handler": _handler_config(handler),
        "risk": limits.to_dict() if limits else None,
        "window": window,
        "symbol": symbol,
    }
    if resume is not None and not record:
        raise ConfigError("resume needs the store (record=True)", hint="drop record=False", setting="resume")
    db = None
    if record:
        from qlm_kernel.store import default_store

        db = store if store is not None else default_store()
    sid = resume or session_id or uuid.uuid4().hex[:12]
    publisher = bus_publisher(publish)
    journal = StoreJournal(db, sid) if db is not None else None
    runner = PaperRunner(
        handler,
        IncrementalSignals(strat, settings, window),
        settings,
        symbol=symbol,
        session_id=sid,
        risk=limits,
        journal=journal,
        publish=publisher,
    )
    start_bar = 0
    if resume is not None:
        start_bar = _restore(db, sid, config, handler, runner)
    elif db is not None:
        db.create_paper_session(sid, label, symbol, config)
    if isinstance(source, DataFrameFeed):
        source.fast_until = start_bar
    if publisher is not None:
        publisher(
            "paper.session.started",
            {
                "session_id": sid,
                "strategy": label,
                "symbol": symbol,
                "resumed_at_bar": start_bar if resume else None,
                "params": strat.params,
            },
        )
    status = "finished"
    try:
        for bar in source:
            if runner.bar + 1 < start_bar:
                runner.warm(bar)
                if runner.bar == start_bar - 1:
                    _check_resume_point(db, sid, bar)
                continue
            runner.step(bar)
            if on_bar is not None:
                on_bar(runner.summary())
            if stop is not None and stop.is_set():
                status = "stopped"
                break
        if stop is not None and stop.is_set():
            status = "stopped"
        if status == "finished":
            runner.finish()
    except BaseException as exc:
        if db is not None:
            err = exc if isinstance(exc, QLMError) else {"type": type(exc).__name__, "message": str(exc)}
            _safe(lambda: db.set_paper_session_status(sid, "failed", error=err))
        if publisher is not None:
            publisher("paper.session.stopped", {"session_id": sid, "status": "failed", "error": str(exc)})
        raise
    if db is not None:
        db.set_paper_session_status(sid, status)
    if publisher is not None:
        publisher("paper.session.stopped", {"session_id": sid, "status": status, **runner.summary()})
    return _result(db, sid, runner, settings, strat, label, config, status)


def _handler_config(handler: ExecutionHandler) -> dict[str, Any]:
    keys = (
        "latency",
        "slippage",
        "fees",
        "fixed_fees",
        "max_participation",
        "max_order_size",
        "max_order_value",
    )
    return {"type": type(handler).__name__, **{k: getattr(handler, k) for k in keys if hasattr(handler, k)}}


def _restore(
    db: Any, sid: str, config: dict[str, Any], handler: ExecutionHandler, runner: PaperRunner
) -> int:
    """Load a stored session into ``handler`` and ``runner``; returns the first bar still to process."""
    row = db.get_paper_session(sid)
    if row is None:
        raise ConfigError(
            f"no paper session {sid!r} to resume",
            hint="list_paper_sessions() shows the ids",
            code="NOT_FOUND",
            session_id=sid,
        )
    if row["status"] == "running" and row["pid"] not in (None, os.getpid()) and _alive(row["pid"]):
        raise ExecutionError(
            f"paper session {sid!r} is still running in process {row['pid']}",
            hint="stop it first (stop_paper_session) or wait for it to end",
            code="SESSION_ACTIVE",
            session_id=sid,
            pid=row["pid"],
        )
    stored = row["config"] or {}
    differ = sorted(
        k
        for k in ("strategy", "source_hash", "params", "settings", "symbol", "window")
        if stored.get(k) != config.get(k)
    )
    if differ:
        raise ConfigError(
            f"cannot resume paper session {sid!r}: {', '.join(differ)} differ from the stored session",
            hint="resume with the same strategy code, parameters, settings and symbol",
            code="PAPER_RESUME_MISMATCH",
            session_id=sid,
            fields=differ,
        )
    state = row["state"] or {}
    known = {o["client_order_id"] for o in db.paper_orders(sid)}
    if state.get("handler") is not None and hasattr(handler, "restore"):
        handler.restore(state["handler"], known_ids=known)
    runner.init_equity = float(state.get("init_equity", runner.init_equity))
    db.set_paper_session_status(sid, "running")
    runner.prior_orders = len(known)
    runner.prior_fills = len(db.paper_fills(sid))
    return int(row["bars_processed"])


def _check_resume_point(db: Any, sid: str, bar: Bar) -> None:
    row = db.get_paper_session(sid)
    stored = row["last_bar_time"]
    if stored is not None and pd.Timestamp(stored) != bar.time:
        raise ConfigError(
            f"the feed does not line up with paper session {sid!r}: its bar "
            f"{row['bars_processed'] - 1} is {bar.time}, the session stopped after {stored}",
            hint="resume with the same feed from the same first bar",
            code="PAPER_RESUME_MISMATCH",
            session_id=sid,
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _safe(fn: Callable[[], Any]) -> None:
    with contextlib.suppress(QLMError):  # the original failure is the one to report
        fn()


def _result(
    db: Any,
    sid: str,
    runner: PaperRunner,
    settings: BacktestSettings,
    strat: Any,
    label: str,
    config: dict[str, Any],
    status: str,
) -> PaperResult:
    """The whole session's result: from the store (all runs of a resumed session) or from memory."""
    index = runner.history.index
    if db is not None:
        fills = [Fill.from_dict(f) for f in db.paper_fills(sid)]
        orders = [Order.from_dict(o["order"]) for o in db.paper_orders(sid)]
        marks = db.paper_marks(sid)
        equity = [m["equity"] for m in marks]
    else:
        fills, orders, equity = runner.fills, list(runner._all_orders.values()), runner.equity
    return PaperResult(
        index=index,
        last_close=runner.history.last_close,
        fills=fills,
        orders=orders,
        equity=equity,
        refusals=runner.refusals,
        settings={**settings.to_dict(), **config["handler"], "risk": config["risk"]},
        params=strat.params,
        strategy_name=label,
        meta={
            "session_id": sid,
            "status": status,
            "symbol": config["symbol"],
            "recorded": db is not None,
            "time": time.time(),
        },
    )
