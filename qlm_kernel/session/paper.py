"""Paper sessions in background threads or worker processes: what the MCP tools, widgets and CLI call.

`start_paper_session` replays data (a dataset, a sample or a frame) through `paper_trade` on a
thread at ``speed`` bars per second (0 = as fast as possible), on the simulated clock, recording
the session in the store. `start_isolated_paper_session` (MCP) runs the same session in a worker
process of its own (`run_paper_session`), watched by a thread here: a strategy that takes longer than
its time limit on one bar is killed there, and the kernel never runs its code. Status, stop and
listing return JSON-safe dicts; sessions started by other processes (or finished earlier) are read
from the store.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any

from qlm_kernel.errors import ConfigError, QLMError
from qlm_kernel.jsonsafe import json_safe
from qlm_kernel.session.limits import listing

_lock = threading.Lock()
_sessions: dict[str, _Session] = {}


class _Session:
    """One background paper session: its thread, stop flag, latest summary and error."""

    def __init__(self, session_id: str, strategy: str) -> None:
        self.session_id = session_id
        self.strategy = strategy
        self.stop = threading.Event()
        self.summary: dict[str, Any] = {}
        self.error: dict[str, Any] | None = None
        self.status = "running"
        self.thread: threading.Thread | None = None
        self.worker_pid: int | None = None
        """Set for a session running in a worker process (`start_isolated_paper_session`)."""
        self.kill = threading.Event()


def running_paper_sessions() -> int:
    """Paper sessions running in this process (threads or workers it watches)."""
    with _lock:
        return sum(1 for entry in _sessions.values() if entry.status == "running")


def _check_speed(speed: Any) -> None:
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or speed < 0:
        raise ConfigError(
            f"speed={speed!r} must be bars per second >= 0 (0 = as fast as possible)",
            hint="e.g. speed=20",
            setting="speed",
            value=repr(speed),
        )


def start_paper_session(
    strategy: Any,
    *,
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    data: Any = None,
    params: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    speed: float = 20.0,
    risk: dict[str, Any] | None = None,
    symbol: str = "ASSET",
) -> dict[str, Any]:
    """Start paper-trading ``strategy`` on replayed data in a background thread; returns {"session_id": ...}.

    ``settings``: backtest settings plus ``latency``/``slippage``/``fees``/``fixed_fees``/
    ``max_participation`` for the paper handler. ``speed``: bars per second (0 = no pause).
    Errors in the arguments (unknown strategy, bad data or settings) raise here, before the thread.
    """
    from qlm_kernel.execution.feeds import DataFrameFeed
    from qlm_kernel.execution.replay import resolve_paper_strategy, strategy_label
    from qlm_kernel.workspace.data import resolve_data

    _check_speed(speed)
    frame, _ = resolve_data(data, dataset=dataset, sample=sample)
    kwargs = {**(settings or {}), **(params or {})}
    strat = resolve_paper_strategy(strategy, dict(params or {}))  # fail fast on a bad strategy/params
    session_id = uuid.uuid4().hex[:12]
    entry = _Session(session_id, strategy_label(strat))
    feed = DataFrameFeed(frame, pace=1.0 / speed if speed else 0.0, stop=entry.stop)
    from qlm_kernel.execution.trading import paper_trade
    from qlm_kernel.store import default_store

    store = default_store()
    started = threading.Event()

    def progress(summary: dict[str, Any]) -> None:
        entry.summary = summary
        started.set()

    def run() -> None:
        try:
            result = paper_trade(
                strategy,
                feed,
                session_id=session_id,
                store=store,
                stop=entry.stop,
                on_bar=progress,
                risk=risk,
                symbol=symbol,
                **kwargs,
            )
            entry.status = result.meta["status"]
        except QLMError as err:
            entry.error, entry.status = err.to_dict(), "failed"
        except Exception as exc:  # reported through status, never lost in the thread
            entry.error, entry.status = {"type": type(exc).__name__, "message": str(exc)}, "failed"
        finally:
            started.set()

    entry.thread = threading.Thread(target=run, name=f"qlm-paper-{session_id}", daemon=True)
    with _lock:
        _sessions[session_id] = entry
    entry.thread.start()
    started.wait(5.0)  # until the session row exists (or the start failed)
    if entry.error is not None and entry.status == "failed" and not entry.summary:
        with _lock:
            _sessions.pop(session_id, None)
        raise QLMError.from_dict(entry.error)
    return {"session_id": session_id, "strategy": entry.strategy, "bars": len(frame), "speed": speed}


def run_paper_session(
    strategy: str,
    *,
    session_id: str,
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    speed: float = 20.0,
    risk: dict[str, Any] | None = None,
    symbol: str = "ASSET",
    progress: Any = None,
) -> dict[str, Any]:
    """A whole paper session, start to end (a worker's call): progress after every bar, and a stop when
    the parent signals one (`qlm_kernel.isolation.worker.stop_requested`)."""
    from qlm_kernel.execution.feeds import DataFrameFeed
    from qlm_kernel.execution.trading import paper_trade
    from qlm_kernel.isolation.worker import stop_requested
    from qlm_kernel.store import default_store
    from qlm_kernel.workspace.data import resolve_data

    frame, _ = resolve_data(None, dataset=dataset, sample=sample)
    stop = stop_requested()
    feed = DataFrameFeed(frame, pace=1.0 / speed if speed else 0.0, stop=stop)

    def on_bar(summary: dict[str, Any]) -> None:
        if progress is not None:
            progress({**json_safe(summary), "session_id": session_id, "bars": len(frame)})

    result = paper_trade(strategy, feed, session_id=session_id, store=default_store(), stop=stop,
                         on_bar=on_bar, risk=risk, symbol=symbol, **{**(settings or {}), **(params or {})})
    return {"session_id": session_id, "status": result.meta["status"], "bars": len(frame)}


def start_isolated_paper_session(strategy: str, *, speed: float = 20.0, time_limit: float = 60.0,
                                 max_sessions: int | None = None, **session: Any) -> dict[str, Any]:
    """`start_paper_session` in a worker process of the ``paper`` pool; returns once the first bar is
    done (or raises its error: a strategy that does not finish a bar within ``time_limit`` s is a
    TIMEOUT). Later, a bar that takes longer than ``time_limit`` (plus the pause between bars) kills
    the worker and fails the session, with the error stored. ``session``: `run_paper_session`'s
    keywords (``dataset``, ``sample``, ``params``, ``settings``, ``risk``, ``symbol``)."""
    from pathlib import Path

    from qlm_kernel.session.workers import run_isolated

    _check_speed(speed)
    session_id = uuid.uuid4().hex[:12]
    entry = _Session(session_id, Path(strategy).stem)
    first = threading.Event()
    stall_limit = float(time_limit) + (1.0 / speed if speed else 0.0)

    def progress(summary: dict[str, Any]) -> None:
        entry.summary = summary
        first.set()

    def started(pid: int) -> None:
        entry.worker_pid = pid

    def run() -> None:
        try:
            out = run_isolated(
                "qlm_kernel.session.paper:run_paper_session",
                {"strategy": strategy, "session_id": session_id, "speed": speed, **session},
                time_limit=stall_limit, stall=True, progress=progress, cancel=entry.kill, started=started,
                pool="paper", pool_size=max_sessions, what="one bar of the paper session",
            )
            entry.status = out["status"]
        except QLMError as err:
            stopped = entry.stop.is_set()
            entry.status = "stopped" if stopped else "failed"
            entry.error = None if stopped else err.to_dict()
            _close_row(session_id, entry.status, None if stopped else err)
        finally:
            first.set()

    entry.thread = threading.Thread(target=run, name=f"qlm-paper-{session_id}", daemon=True)
    with _lock:
        _sessions[session_id] = entry
    entry.thread.start()
    first.wait()
    if entry.error is not None and not entry.summary:
        with _lock:
            _sessions.pop(session_id, None)
        raise QLMError.from_dict(entry.error)
    return {"session_id": session_id, "strategy": entry.strategy, "bars": entry.summary.get("bars", 0),
            "speed": speed}


def _close_row(session_id: str, status: str, error: Any) -> None:
    """Mark a session whose worker was killed as ``status`` in the store (if its row says running)."""
    from qlm_kernel.store import default_store

    try:
        store = default_store()
        row = store.get_paper_session(session_id)
        if row is not None and row["status"] == "running":
            store.set_paper_session_status(session_id, status, error=error)
    except QLMError:  # the store is unreachable: the status call reports the entry's own state
        pass


def paper_session_status(session_id: str) -> dict[str, Any]:
    """JSON-safe status: status, bars, position, cash, equity, pnl, order/fill counts, last error."""
    from qlm_kernel.store import default_store
    from qlm_kernel.store.paper import PAPER_LIST_FIXES

    row = default_store().get_paper_session(session_id)
    with _lock:
        entry = _sessions.get(session_id)
    if row is None and entry is None:
        raise ConfigError(
            f"no paper session with id {session_id!r}",
            code="NOT_FOUND",
            fixes=PAPER_LIST_FIXES,
            session_id=session_id,
        )
    summary = dict((row or {}).get("summary") or {})
    if entry is not None and entry.summary.get("bars_processed", -1) >= summary.get("bars_processed", -1):
        summary.update(entry.summary)
    status = entry.status if entry is not None else row["status"]  # type: ignore[index]
    error = entry.error if entry is not None and entry.error else (row or {}).get("error")
    return json_safe(
        {
            "session_id": session_id,
            "strategy": (row or {}).get("strategy", entry.strategy if entry else None),
            "status": status,
            "in_this_process": entry is not None and entry.thread is not None and entry.thread.is_alive(),
            "bars_processed": summary.get("bars_processed", 0),
            "position": summary.get("position", 0.0),
            "cash": summary.get("cash"),
            "equity": summary.get("equity"),
            "pnl": summary.get("pnl", 0.0),
            "n_orders": summary.get("n_orders", 0),
            "n_fills": summary.get("n_fills", 0),
            "n_refused": summary.get("n_refused", 0),
            "last_error": error,
            "last_bar_time": (row or {}).get("last_bar_time"),
        }
    )


def stop_paper_session(session_id: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """Ask a running session to stop after its current bar, wait up to ``timeout`` s; returns its status."""
    with _lock:
        entry = _sessions.get(session_id)
    if entry is None:
        status = paper_session_status(session_id)  # NOT_FOUND for unknown ids
        if status["status"] == "running":
            raise ConfigError(
                f"paper session {session_id!r} runs in another process",
                hint="stop it there",
                code="NOT_OWNER",
                session_id=session_id,
            )
        return status
    entry.stop.set()
    if entry.worker_pid is not None:  # a session in a worker: ask it, then make sure
        import os
        import signal

        with contextlib.suppress(OSError):
            os.kill(entry.worker_pid, signal.SIGUSR1)
    if entry.thread is not None:
        entry.thread.join(timeout)
        if entry.thread.is_alive() and entry.worker_pid is not None:
            entry.kill.set()
            entry.thread.join(timeout)
    return paper_session_status(session_id)


def list_paper_sessions(limit: int = 50) -> list[dict[str, Any]]:
    """Sessions in the store, newest first (plus any of this process not yet stored), JSON-safe."""
    from qlm_kernel.store import default_store

    rows = default_store().list_paper_sessions(limit=listing(limit))
    out = [
        {
            "session_id": r["id"],
            "strategy": r["strategy"],
            "symbol": r["symbol"],
            "status": r["status"],
            "bars_processed": r["bars_processed"],
            "created_at": r["created_at"],
            "equity": (r.get("summary") or {}).get("equity"),
            "pnl": (r.get("summary") or {}).get("pnl"),
        }
        for r in rows
    ]
    with _lock:
        live = {sid: e for sid, e in _sessions.items()}
    for item in out:
        if item["session_id"] in live:
            item["status"] = live[item["session_id"]].status
    return json_safe(out)


def paper_replay_portfolio(
    strategy: Any,
    *,
    universe: Any,
    params: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    compare: bool = True,
    record: bool = False,
) -> dict[str, Any]:
    """Replay ``universe`` (a stored universe's name, a `Universe` or a dict symbol -> frame) through one
    paper account (every symbol, shared cash); returns a JSON-safe dict.

    ``settings``: backtest settings plus ``latency``/``slippage``/``fees``/``fixed_fees``/
    ``max_participation`` for the paper broker. With ``compare`` the same universe and settings run
    through the portfolio backtest (next open, unrecorded) and the dict carries the divergence report
    (``summary``, ``notes``: the stated rules under which the two differ, ``per_symbol``).
    ``record=True`` writes the session to the store.
    """
    from qlm_kernel.execution.paper import DEFAULT_SLIPPAGE
    from qlm_kernel.execution.portfolio_replay import paper_replay_portfolio as replay
    from qlm_kernel.strategy.portfolio_run import as_universe
    from qlm_kernel.strategy.portfolio_run import backtest_portfolio as pure_backtest

    given = dict(settings or {})
    data = as_universe(universe)
    res = replay(strategy, data, record=record, **given, **(params or {}))
    out: dict[str, Any] = {"result": res.to_dict(), "session_id": res.meta["session_id"]}
    if compare:
        backtest_settings = {k: v for k, v in given.items() if k not in ("latency", "max_participation")}
        backtest_settings.setdefault("slippage", DEFAULT_SLIPPAGE)
        backtest_settings["fill"] = "next_open"
        bt = pure_backtest(strategy, data, **backtest_settings, **(params or {}))
        rep = res.divergence(bt)
        out["divergence"] = rep.to_dict()
        out["backtest_final_value"] = float(bt.stats["final_value"])
    return json_safe(out)
