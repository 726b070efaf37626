"""`paper_replay_portfolio`: replay a universe through the multi-symbol `PortfolioRunner` and one account.

With the paper broker, a latency shorter than the bar spacing and the backtest's slippage and fees,
the replay's fills, trades and equity equal ``qlm.backtest_portfolio(..., fill="next_open")`` on the
same universe and settings (tested to 1e-9): the runner applies the engine's signal rules and its
order of execution in a bar (sells first), the broker the engine's fill, sizing (buying power = cash
less twice the shorts' entry value), fee and stop rules. ``result.divergence(backtest)`` compares
fills with the backtest's orders and trades with its trades, per symbol, and names the stated rules
that make them differ (`PortfolioDivergenceReport.notes`):

- ``LATENCY``: an order fills at the open of the first bar of its symbol at/after its arrival, so a
  latency over the bar spacing fills a bar (or more) later than the next-open backtest;
- ``SLIPPAGE`` / ``FEES``: the paper broker's costs differ from the backtest's settings;
- ``LIQUIDATION``: the backtest liquidated the group (its margin rule); a paper account is a cash
  account with no liquidation, so it keeps trading;
- ``WORKING_AT_END``: a decision on a symbol's last bar stays a working order in paper trading (the
  backtest drops it); it has no fill, so it changes no number;
- ``OTHER_HANDLER``: a handler other than the paper broker (an exchange) fills at its own prices.

Any difference not explained by one of these is a bug (the report's ``identical`` says whether the
fills match exactly).
"""

from __future__ import annotations

import functools
import html
import math
import time
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.errors import ConfigError
from qlm_kernel.execution.base import ExecutionHandler
from qlm_kernel.execution.feeds import Bar
from qlm_kernel.execution.paper import DEFAULT_SLIPPAGE, PaperExecutionHandler
from qlm_kernel.execution.portfolio_runner import PortfolioRunner
from qlm_kernel.execution.replay import (
    bus_publisher,
    default_paper_handler,
    paper_settings,
    refuse_handler_options,
    resolve_paper_strategy,
    risk_limits,
    signal_source,
    strategy_label,
)
from qlm_kernel.execution.result import _ResultCore, match_labels
from qlm_kernel.execution.risk import RiskLimits
from qlm_kernel.execution.trades import build_trades
from qlm_kernel.execution.types import Fill, Order
from qlm_kernel.jsonsafe import json_safe


def paper_replay_portfolio(
    strategy: Any,
    data: Any,
    *,
    handler: ExecutionHandler | None = None,
    markets: Mapping[str, str] | None = None,
    latency: float | None = None,
    slippage: float | None = None,
    fees: float | None = None,
    fixed_fees: float | None = None,
    max_participation: float | None = None,
    risk: RiskLimits | dict[str, Any] | None = None,
    signals: str = "full",
    publish: bool = False,
    record: bool = False,
    store: Any = None,
    session_id: str | None = None,
    **kwargs: Any,
) -> PaperPortfolioResult:
    """Replay ``data`` (a `Universe`, a stored universe's name or a dict symbol -> frame) through one
    account: one strategy on every symbol, shared cash; returns a `PaperPortfolioResult`.

    ``handler``: default a `PaperExecutionHandler` built from ``latency`` (0.1 s), ``slippage``
    (0.0005), ``fees``, ``fixed_fees``, ``max_participation`` and ``init_cash`` (those may not be given
    with a handler). ``markets``: the handler's symbol for a universe symbol where they differ (universe
    symbols cannot hold '/': ``{"BTC-USDT": "BTC/USDT"}`` for CCXT); the result uses the handler's
    symbols. Other keywords: backtest settings (init_cash, size, size_type, integer, direction,
    sl_stop, tp_stop, tsl_stop, close_at_end) or strategy parameters. ``signals`` as in `paper_replay`
    ("full": computed once per symbol after a lookahead proof; "incremental": per bar). ``record=True``
    writes the session to the store bar by bar (``store`` or the default one; symbols joined by commas;
    resuming a portfolio session is not supported). ``publish=True`` sends paper.* events.
    """
    from qlm_kernel.strategy.portfolio_run import as_universe

    started = time.perf_counter()
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
        slippage=(DEFAULT_SLIPPAGE if slippage is None else slippage) if handler is None else 0.0,
    )
    universe = as_universe(data)
    names = {sym: str((markets or {}).get(sym, sym)) for sym in universe.symbols}
    unknown = sorted(set(markets or {}) - set(universe.symbols))
    if unknown or len(set(names.values())) != len(names):
        raise ConfigError(
            f"markets must map distinct universe symbols to distinct handler symbols; "
            f"{unknown[0] if unknown else 'two symbols'!r} does not fit",
            hint=f"universe symbols: {', '.join(universe.symbols)}",
            setting="markets",
        )
    strat = resolve_paper_strategy(strategy, params)
    sources: dict[str, Any] = {}
    modes: dict[str, str] = {}
    for sym in universe.symbols:
        sources[names[sym]], modes[names[sym]] = signal_source(strat, universe.frame(sym), settings, signals)
    if handler is None:
        handler = default_paper_handler(settings, latency, max_participation)
    limits = risk_limits(risk)
    publisher = bus_publisher(publish)
    label = strategy_label(strat)
    sid = session_id or (uuid.uuid4().hex[:12] if record else "replay")
    db = journal = None
    if record:
        from qlm_kernel.execution.trading import StoreJournal, _handler_config
        from qlm_kernel.store import default_store

        db = store if store is not None else default_store()
        db.create_paper_session(
            sid,
            label,
            ",".join(names.values()),
            {
                "strategy": label,
                "source_hash": getattr(type(strat), "source_hash", None),
                "params": strat.params,
                "settings": settings.to_dict(),
                "handler": _handler_config(handler),
                "risk": limits.to_dict() if limits else None,
                "symbols": list(names.values()),
                "universe": universe.name,
                "portfolio": True,
            },
        )
        journal = StoreJournal(db, sid)
    runner = PortfolioRunner(
        handler, sources, settings, session_id=sid, risk=limits, journal=journal, publish=publisher
    )
    if publisher is not None:
        publisher(
            "paper.session.started",
            {"session_id": sid, "strategy": label, "symbols": list(names.values()), "params": strat.params},
        )
    o, h, lo, c, v, has = (
        universe.open,
        universe.high,
        universe.low,
        universe.close,
        universe.volume,
        universe.has_bar,
    )
    status = "finished"
    try:
        for i, t in enumerate(universe.index):
            bars = {
                names[sym]: Bar(
                    t, float(o[i, j]), float(h[i, j]), float(lo[i, j]), float(c[i, j]), float(v[i, j])
                )
                for j, sym in enumerate(universe.symbols)
                if has[i, j]
            }
            runner.step(t, bars)
        runner.finish()
    except BaseException as exc:
        status = "failed"
        if db is not None:
            db.set_paper_session_status(
                sid, "failed", error={"type": type(exc).__name__, "message": str(exc)}
            )
        raise
    finally:
        if publisher is not None:
            publisher("paper.session.stopped", {"session_id": sid, "status": status, **runner.summary()})
    if db is not None:
        db.set_paper_session_status(sid, status)
    last = {names[sym]: float(universe.valuation_close[-1, j]) for j, sym in enumerate(universe.symbols)}
    return PaperPortfolioResult(
        index=universe.index,
        symbols=tuple(names.values()),
        last_close=last,
        fills=runner.fills,
        orders=list(runner._all_orders.values()),
        equity=runner.equity_array(),
        refusals=runner.refusals,
        settings={
            **settings.to_dict(),
            "latency": getattr(handler, "latency", None),
            "handler": type(handler).__name__,
            "max_participation": max_participation,
            "risk": limits.to_dict() if limits else None,
        },
        params=strat.params,
        strategy_name=label,
        has_bar=np.asarray(has),
        meta={
            "duration_s": time.perf_counter() - started,
            "signals": modes,
            "universe": universe.name,
            "session_id": sid,
            "recorded": db is not None,
            "markets": names,
            "status": status,
            "open_orders": [x.client_order_id for x in handler.open_orders()]
            if isinstance(handler, PaperExecutionHandler)
            else [],
        },
    )


class PaperPortfolioResult(_ResultCore):
    """Fills, orders, trades (with ``symbol``, the columns of `PortfolioResult.trades`), equity on the
    universe's index and refusals of a multi-symbol paper run."""

    _empty_fills_tz = "UTC"

    def __init__(
        self,
        *,
        index: pd.DatetimeIndex,
        symbols: tuple[str, ...],
        last_close: dict[str, float],
        fills: list[Fill],
        orders: list[Order],
        equity: np.ndarray,
        refusals: list[dict[str, Any]],
        settings: dict[str, Any],
        params: dict[str, Any],
        strategy_name: str,
        has_bar: np.ndarray,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.index = index
        self.symbols = tuple(symbols)
        self.last_close = dict(last_close)
        self._fills = list(fills)
        self._orders = list(orders)
        self._equity = np.asarray(equity, dtype=np.float64)
        self.refusals = list(refusals)
        self.settings = dict(settings)
        self.params = dict(params)
        self.strategy_name = strategy_name
        self.has_bar = has_bar
        self.meta = dict(meta or {})

    @functools.cached_property
    def trades(self) -> pd.DataFrame:
        """Round trips of every symbol by entry bar, then symbol (`PortfolioResult.trades`' columns)."""
        parts, signal_bars = [], []
        for sym in self.symbols:
            t = build_trades([f for f in self._fills if f.symbol == sym], self.index, self.last_close[sym])
            signal_bars += list(t.attrs.get("signal_bars", []))
            t.insert(0, "symbol", sym)
            parts.append(t)
        frame = pd.concat(parts, ignore_index=True)
        frame["symbol"] = frame["symbol"].astype(object)
        order = np.lexsort(
            (frame["symbol"].map(self.symbols.index).to_numpy(), frame["entry_bar"].to_numpy())
        )
        frame = frame.iloc[order].reset_index(drop=True)
        frame.attrs["signal_bars"] = [signal_bars[k] for k in order]
        return frame

    @functools.cached_property
    def equity(self) -> pd.Series:
        """Cash + every position at its last close, at each bar of the universe."""
        return pd.Series(self._equity, index=self.index[: len(self._equity)], name="equity")

    def divergence(self, backtest_result: Any) -> PortfolioDivergenceReport:
        """Fills vs the backtest's orders, trades vs its trades, per symbol: a `PortfolioDivergenceReport`."""
        return PortfolioDivergenceReport.compare(self, backtest_result)

    def _dict_head(self) -> dict[str, Any]:
        return {"strategy": self.strategy_name, "symbols": list(self.symbols)}

    def __repr__(self) -> str:
        return (
            f"<PaperPortfolioResult {self.strategy_name} symbols={len(self.symbols)} bars={len(self.index)} "
            f"trades={len(self.trades)} fills={len(self._fills)} final_value={self.final_value:.2f}>"
        )


def _nth(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    return frame.groupby(keys, sort=False).cumcount()


class PortfolioDivergenceReport:
    """A multi-symbol paper run against `qlm.backtest_portfolio` on the same universe.

    ``orders``: every paper fill and backtest order matched by symbol, bar, side (and their order
    within that key): sizes, prices (``price_diff_bps`` against the trader, positive = paper worse) and
    fees. ``trades``: round trips matched by symbol, the bar whose signal opened them and direction,
    with entry/exit delays and pnl. ``per_symbol``: counts and differences by symbol. ``summary``:
    totals, final values, ``identical`` (same fills to 1e-9) and ``notes``: the stated rules (module
    docstring) that apply to these two runs.
    """

    def __init__(
        self,
        orders: pd.DataFrame,
        trades: pd.DataFrame,
        per_symbol: pd.DataFrame,
        summary: dict[str, Any],
        notes: list[dict[str, str]],
    ) -> None:
        self.orders = orders
        self.trades = trades
        self.per_symbol = per_symbol
        self.summary = summary
        self.notes = notes

    @property
    def table(self) -> pd.DataFrame:
        """Alias of ``orders`` (the per-fill comparison)."""
        return self.orders

    @classmethod
    def compare(cls, paper: PaperPortfolioResult, backtest: Any) -> PortfolioDivergenceReport:
        """Build the report for ``paper`` against a `PortfolioResult`."""
        markets = dict(paper.meta.get("markets") or {})
        if tuple(
            markets.get(x, x) for x in backtest.symbols
        ) != paper.symbols or not backtest.data.index.equals(paper.index):
            raise ConfigError(
                "the backtest ran on another universe (symbols or bars differ)",
                hint="backtest_portfolio(strategy, the same universe, fill='next_open', ...)",
                code="BAD_SETTING",
                field="backtest",
            )
        pf = paper.fills
        po = pd.DataFrame(
            {
                "symbol": pf["symbol"].astype(object),
                "bar": pf["bar"].astype(np.int64),
                "side": pf["side"].astype(object),
                "size": pf["size"],
                "price": pf["price"],
                "fees": pf["fee"],
                "reason": pf["reason"].astype(object),
            }
        )
        bo_src = backtest.orders
        bo = pd.DataFrame(
            {
                "symbol": bo_src["symbol"].astype(object).map(lambda x: markets.get(x, x)),
                "bar": bo_src["bar"].astype(np.int64),
                "side": bo_src["side"].astype(object),
                "size": bo_src["size"],
                "price": bo_src["price"],
                "fees": bo_src["fees"],
                "reason": bo_src["reason"].astype(object) if "reason" in bo_src else "rebalance",
            }
        )
        keys = ["symbol", "bar", "side"]
        po["n"] = _nth(po, keys)
        bo["n"] = _nth(bo, keys)
        merged = po.merge(bo, on=[*keys, "n"], how="outer", suffixes=("_paper", "_backtest"), indicator=True)
        merged["matched"] = match_labels(merged.pop("_merge"))
        sign = np.where(merged["side"] == "buy", 1.0, -1.0)
        merged["price_diff_bps"] = sign * (merged["price_paper"] / merged["price_backtest"] - 1.0) * 1e4
        merged["size_diff"] = merged["size_paper"] - merged["size_backtest"]
        merged["fees_diff"] = merged["fees_paper"] - merged["fees_backtest"]
        merged.insert(2, "time", paper.index.take(merged["bar"].to_numpy(dtype=np.int64)))
        orders = merged.sort_values(["bar", "symbol"], kind="stable").drop(columns="n").reset_index(drop=True)
        trades = _trade_table(paper, backtest)
        both = orders[orders["matched"] == "both"]
        rel = np.abs(both[["size_diff", "fees_diff"]].to_numpy()) / np.maximum(
            np.abs(both[["size_backtest", "fees_backtest"]].to_numpy()), 1.0
        )
        identical = bool(
            (orders["matched"] == "both").all()
            and (rel <= 1e-9).all()
            and (np.abs(both["price_diff_bps"].to_numpy()) <= 1e-5).all()
        )
        rows = []
        for sym in paper.symbols:
            o = orders[orders["symbol"] == sym]
            ob = o[o["matched"] == "both"]
            t = trades[trades["symbol"] == sym]
            rows.append(
                {
                    "symbol": sym,
                    "fills_paper": int(o["size_paper"].notna().sum()),
                    "orders_backtest": int(o["size_backtest"].notna().sum()),
                    "matched": len(ob),
                    "paper_only": int((o["matched"] == "paper_only").sum()),
                    "backtest_only": int((o["matched"] == "backtest_only").sum()),
                    "max_abs_price_diff_bps": float(ob["price_diff_bps"].abs().max()) if len(ob) else 0.0,
                    "max_abs_size_diff": float(ob["size_diff"].abs().max()) if len(ob) else 0.0,
                    "pnl_paper": float(t["pnl_paper"].sum()),
                    "pnl_backtest": float(t["pnl_backtest"].sum()),
                }
            )
        per_symbol = pd.DataFrame(rows).set_index("symbol")
        per_symbol["pnl_diff"] = per_symbol["pnl_paper"] - per_symbol["pnl_backtest"]
        final_bt = float(backtest.stats["final_value"])
        summary = {
            "n_fills_paper": len(po),
            "n_orders_backtest": len(bo),
            "n_matched": len(both),
            "n_paper_only": int((orders["matched"] == "paper_only").sum()),
            "n_backtest_only": int((orders["matched"] == "backtest_only").sum()),
            "max_abs_price_diff_bps": float(both["price_diff_bps"].abs().max()) if len(both) else 0.0,
            "final_value_paper": paper.final_value,
            "final_value_backtest": final_bt,
            "final_value_diff": paper.final_value - final_bt,
            "identical": identical,
        }
        notes = _notes(paper, backtest)
        summary["notes"] = [n["code"] for n in notes]
        return cls(orders, trades, per_symbol, summary, notes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary, notes, per-symbol table and the order comparison."""
        return json_safe(
            {
                "summary": self.summary,
                "notes": self.notes,
                "per_symbol": self.per_symbol.reset_index().to_dict("records"),
                "orders": self.orders.to_dict("records"),
            }
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in self.summary.items()
        )
        return f"<div><b>Portfolio paper vs backtest divergence</b><table>{rows}</table></div>"

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<PortfolioDivergenceReport matched={s['n_matched']} paper_only={s['n_paper_only']} "
            f"backtest_only={s['n_backtest_only']} identical={s['identical']} notes={s['notes']}>"
        )


def _signal_bar(has: np.ndarray, j: int, entry_bar: int) -> int:
    """The symbol's bar before ``entry_bar`` (whose signal a next-open entry followed)."""
    rows = np.flatnonzero(has[:entry_bar, j])
    return int(rows[-1]) if len(rows) else -1


def _trade_table(paper: PaperPortfolioResult, backtest: Any) -> pd.DataFrame:
    pt = paper.trades.copy()
    bt = backtest.trades.copy()
    markets = dict(paper.meta.get("markets") or {})
    bt["symbol"] = bt["symbol"].astype(object).map(lambda x: markets.get(x, x))
    pt["signal_bar"] = [int(b) if b is not None else -1 for b in pt.attrs["signal_bars"]]
    col = {s: k for k, s in enumerate(paper.symbols)}
    bt["signal_bar"] = [
        _signal_bar(paper.has_bar, col[s], int(e)) for s, e in zip(bt["symbol"], bt["entry_bar"], strict=True)
    ]
    for t in (pt, bt):
        t["symbol"] = t["symbol"].astype(object)
        t["direction"] = t["direction"].astype(str)
    keys = ["symbol", "signal_bar", "direction"]
    fields = ["entry_time", "exit_time", "entry_price", "exit_price", "size", "pnl", "fees", "status"]
    merged = pt[keys + fields].merge(
        bt[keys + fields], on=keys, how="outer", suffixes=("_paper", "_backtest"), indicator=True
    )
    merged["matched"] = match_labels(merged.pop("_merge"))
    merged["entry_delay"] = merged["entry_time_paper"] - merged["entry_time_backtest"]
    merged["exit_delay"] = merged["exit_time_paper"] - merged["exit_time_backtest"]
    merged["pnl_diff"] = merged["pnl_paper"] - merged["pnl_backtest"]
    for c in ("status_paper", "status_backtest"):
        merged[c] = merged[c].astype(object)
    return merged.sort_values(["signal_bar", "symbol"], kind="stable").reset_index(drop=True)


def _notes(paper: PaperPortfolioResult, backtest: Any) -> list[dict[str, str]]:
    """The stated rules under which these two runs must differ."""
    s, b = paper.settings, backtest.settings
    notes = []
    if s.get("handler") != "PaperExecutionHandler":
        notes.append(
            {
                "code": "OTHER_HANDLER",
                "message": f"fills came from {s.get('handler')}, at its own "
                "prices and sizes, not the simulated next open",
            }
        )
    spacing = np.diff(paper.index.asi8).min() / 1e9 if len(paper.index) > 1 else math.inf
    latency = s.get("latency")
    if latency is not None and latency > spacing:
        notes.append(
            {
                "code": "LATENCY",
                "message": f"latency {latency:g} s is over the smallest bar spacing "
                f"({spacing:g} s): an order fills at the first bar at/after its arrival, later than the "
                "next open",
            }
        )
    for name, code in (("slippage", "SLIPPAGE"), ("fees", "FEES"), ("fixed_fees", "FEES")):
        same = math.isclose(float(s.get(name) or 0.0), float(getattr(b, name)), rel_tol=0, abs_tol=1e-15)
        if not same and not any(n["code"] == code for n in notes):
            notes.append(
                {
                    "code": code,
                    "message": f"paper {name}={s.get(name)} but the backtest's is {getattr(b, name)}",
                }
            )
    for name in (
        "init_cash",
        "size",
        "size_type",
        "direction",
        "integer",
        "close_at_end",
        "sl_stop",
        "tp_stop",
        "tsl_stop",
    ):
        if s.get(name) != getattr(b, name):
            notes.append(
                {
                    "code": "SETTINGS",
                    "message": f"paper {name}={s.get(name)!r} but the backtest's is {getattr(b, name)!r}",
                }
            )
    if getattr(b, "fill", "next_open") != "next_open":
        notes.append(
            {
                "code": "SETTINGS",
                "message": "the backtest fills at the close; paper orders fill at the "
                "next price after the decision (compare with fill='next_open')",
            }
        )
    if any(w.get("code") == "LIQUIDATED" for w in getattr(backtest, "warnings", [])):
        notes.append(
            {
                "code": "LIQUIDATION",
                "message": "the backtest liquidated the group (margin rule); a paper "
                "cash account is not liquidated and keeps trading",
            }
        )
    if paper.meta.get("open_orders"):
        notes.append(
            {
                "code": "WORKING_AT_END",
                "message": f"{len(paper.meta['open_orders'])} decision(s) on the "
                "last bars are still working orders (the backtest drops them; no fill either way)",
            }
        )
    return notes
