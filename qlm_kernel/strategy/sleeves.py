"""Several strategies in one portfolio: each `Sleeve` runs a strategy on its own symbols, with a capital
weight, either from one shared cash balance or from its own cash (a sleeve per strategy).

A position is a column of the grouped kernel: a sleeve's symbol is its own column (``SLEEVE.SYMBOL``),
so two sleeves can hold the same symbol independently. ``cash="shared"`` runs every column in one group
(one cash balance; capital weights do not apply). ``cash="sleeves"`` runs each sleeve as its own group
with ``weight x init_cash``: the portfolio's equity is the sum of the sleeves', its trades the union;
a sleeve that is liquidated stops alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from qlm_kernel.engine import layout as L
from qlm_kernel.engine.group_api import simulate_universe
from qlm_kernel.engine.group_kernels import equity_stats
from qlm_kernel.engine.kernels import finish_trades
from qlm_kernel.engine.settings import BacktestSettings
from qlm_kernel.errors import ConfigError
from qlm_kernel.strategy.loader import resolve_strategy

SLEEVE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
CASH_MODES = ("shared", "sleeves")


class Sleeve:
    """One strategy of a multi-strategy portfolio: ``strategy`` (name, file, class or instance) on
    ``symbols`` (None = every symbol of the universe) with capital ``weight`` (a fraction of the initial
    cash, used with ``cash="sleeves"``); other keywords are the strategy's parameters."""

    __slots__ = ("name", "params", "strategy", "symbols", "weight")

    def __init__(
        self,
        strategy: Any,
        symbols: Sequence[str] | None = None,
        *,
        weight: float = 1.0,
        name: str | None = None,
        **params: Any,
    ) -> None:
        label = name or (
            strategy
            if isinstance(strategy, str)
            else getattr(strategy, "__name__", None) or type(strategy).__name__
        )
        label = re.sub(r"[^A-Za-z0-9_-]", "_", str(label).rsplit("/", 1)[-1].removesuffix(".py"))[:40]
        if name is not None and not SLEEVE_NAME.match(name):
            raise ConfigError(
                f"sleeve name {name!r} must be 1-40 characters of A-Z a-z 0-9 _ -",
                hint="e.g. Sleeve('sma_cross', name='trend')",
                code="BAD_SETTING",
                field="name",
            )
        if not (isinstance(weight, (int, float)) and 0.0 < float(weight) <= 1.0):
            raise ConfigError(
                f"sleeve {label!r}: weight must be a fraction of the capital in (0, 1], got {weight!r}",
                hint="weights are fractions of init_cash, e.g. 0.6 and 0.4",
                code="BAD_SETTING",
                field="weight",
                value=str(weight),
            )
        self.strategy = strategy
        self.symbols = None if symbols is None else list(symbols)
        self.weight = float(weight)
        self.name = label
        self.params = params

    def __repr__(self) -> str:
        return f"Sleeve({self.name!r}, symbols={self.symbols!r}, weight={self.weight:g})"


def run_sleeves(
    sleeves: Sequence[Sleeve], universe: Any, settings: BacktestSettings, cash: str
) -> dict[str, Any]:
    """Run the sleeves over ``universe``; returns the pieces of a `PortfolioResult`: the column
    universe (one column per sleeve and symbol), equity, trades, trade columns, accumulators, params,
    and ``labels`` (column -> (sleeve, symbol))."""
    from qlm_kernel.data.universe import Universe

    if cash not in CASH_MODES:
        raise ConfigError(
            f"cash={cash!r} is not one of {list(CASH_MODES)}",
            hint="cash='shared' (one balance) or cash='sleeves' (each sleeve its own weight x init_cash)",
            code="BAD_SETTING",
            field="cash",
            value=str(cash),
        )
    _check(sleeves, universe, cash)
    frames: dict[str, Any] = {}
    strategies: dict[str, Any] = {}
    labels: dict[str, tuple[str, str]] = {}
    params: dict[str, dict[str, Any]] = {}
    for sleeve in sleeves:
        strat = resolve_strategy(sleeve.strategy, **sleeve.params)  # once per sleeve (a file is read)
        params[sleeve.name] = dict(strat.params)
        for sym in sleeve.symbols or universe.symbols:
            column = f"{sleeve.name}.{sym}"
            frames[column] = universe.frame(sym)
            strategies[column] = strat
            labels[column] = (sleeve.name, sym)
    columns = Universe(
        universe.name, frames, fingerprints={c: universe.fingerprints[s] for c, (_, s) in labels.items()}
    )
    from qlm_kernel.strategy.portfolio_run import portfolio_signals

    if cash == "shared":
        arrays, _, _ = portfolio_signals(strategies, columns, settings, {}, frames=frames)
        equity, trades, cols, acc = simulate_universe(columns, *arrays, settings)
        return {
            "universe": columns,
            "equity": equity,
            "trades": trades,
            "cols": cols,
            "acc": acc,
            "params": params,
            "labels": labels,
            "sleeve_equity": None,
        }
    return _separate_cash(sleeves, columns, strategies, frames, labels, settings) | {"params": params}


def _check(sleeves: Sequence[Sleeve], universe: Any, cash: str) -> None:
    if not sleeves:
        raise ConfigError(
            "no sleeves given", hint="[Sleeve('sma_cross', ['AAA']), Sleeve(...)]", code="BAD_SETTING"
        )
    names = [s.name for s in sleeves]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(
            f"two sleeves are named {duplicated[0]!r}",
            hint="give each Sleeve(..., name='...')",
            code="BAD_SETTING",
            field="name",
            value=duplicated[0],
        )
    for sleeve in sleeves:
        for sym in sleeve.symbols or ():
            universe.column(sym)  # did-you-mean on an unknown symbol
    total = sum(s.weight for s in sleeves)
    if cash == "sleeves" and total > 1.0 + 1e-9:
        raise ConfigError(
            f"the sleeves' weights add up to {total:g}, more than the capital",
            hint="weights are fractions of init_cash; make them sum to 1 or less",
            code="BAD_SETTING",
            field="weight",
            value=f"{total:g}",
        )
    if cash == "shared" and any(s.weight != 1.0 for s in sleeves):
        raise ConfigError(
            "capital weights need cash='sleeves': with one shared balance every sleeve "
            "draws on the same cash",
            hint="pass cash='sleeves', or drop weight=",
            code="BAD_SETTING",
            field="weight",
        )


def _separate_cash(
    sleeves: Sequence[Sleeve],
    columns: Any,
    strategies: dict[str, Any],
    frames: dict[str, Any],
    labels: dict[str, tuple[str, str]],
    settings: BacktestSettings,
) -> dict[str, Any]:
    """Each sleeve its own group and cash (weight x init_cash); the portfolio is their sum."""
    from qlm_kernel.data.universe import Universe
    from qlm_kernel.strategy.portfolio_run import portfolio_signals

    n = len(columns)
    index_of = {c: j for j, c in enumerate(columns.symbols)}
    equity = np.zeros(n)
    pieces_trades, pieces_cols = [], []
    n_rejected = 0
    final_cash = 0.0
    liquidation_bars = []
    sleeve_equity: dict[str, tuple[float, np.ndarray]] = {}
    for sleeve in sleeves:
        own = [c for c in columns.symbols if labels[c][0] == sleeve.name]
        sub = Universe(
            f"{columns.name}.{sleeve.name}",
            {c: frames[c] for c in own},
            fingerprints={c: columns.fingerprints[c] for c in own},
        )
        s = BacktestSettings(**{**settings.to_dict(), "init_cash": settings.init_cash * sleeve.weight})
        arrays, _, _ = portfolio_signals({c: strategies[c] for c in own}, sub, s, {}, frames=frames)
        eq, trades, cols, acc = simulate_universe(sub, *arrays, s)
        at = np.searchsorted(columns.index.asi8, sub.index.asi8)  # the sleeve's bars in the whole index
        eq = _on_whole_index(eq, at, n, s.init_cash)
        trades[:, L.TR_ENTRY_BAR] = at[trades[:, L.TR_ENTRY_BAR].astype(np.int64)]
        closed = trades[:, L.TR_EXIT_BAR] >= 0
        trades[closed, L.TR_EXIT_BAR] = at[trades[closed, L.TR_EXIT_BAR].astype(np.int64)]
        equity += eq
        sleeve_equity[sleeve.name] = (s.init_cash, eq)
        pieces_trades.append(trades)
        pieces_cols.append(np.array([index_of[sub.symbols[c]] for c in cols], dtype=np.int64))
        n_rejected += int(acc[L.ST_N_REJECTED])
        final_cash += float(acc[L.ST_FINAL_CASH])
        if acc[L.ST_LIQUIDATION_BAR] >= 0:
            liquidation_bars.append(int(at[int(acc[L.ST_LIQUIDATION_BAR])]))
    unused = settings.init_cash * (1.0 - sum(s.weight for s in sleeves))
    equity += unused  # capital no sleeve was given stays as cash
    trades = np.concatenate(pieces_trades) if pieces_trades else np.empty((0, L.N_TRADE_FIELDS))
    cols = np.concatenate(pieces_cols) if pieces_cols else np.empty(0, dtype=np.int64)
    order = np.argsort(trades[:, L.TR_ENTRY_BAR].astype(np.int64) * len(index_of) + cols, kind="stable")
    trades, cols = np.ascontiguousarray(trades[order]), cols[order]
    acc = np.empty(L.N_STATS)
    equity_stats(equity, settings.init_cash, n - 1, acc)
    finish_trades(trades, len(trades), acc, n)
    acc[L.ST_N_TRADES] = len(trades)
    acc[L.ST_N_REJECTED] = n_rejected
    acc[L.ST_FINAL_VALUE] = equity[-1] if n else settings.init_cash
    acc[L.ST_FINAL_CASH] = final_cash + unused
    acc[L.ST_BAD_PRICE_BAR] = -1
    acc[L.ST_LIQUIDATION_BAR] = min(liquidation_bars) if liquidation_bars else -1
    held = _held_bars(trades, n)
    acc[L.ST_EXPOSURE_BARS] = int(held.sum())
    return {
        "universe": columns,
        "equity": equity,
        "trades": trades,
        "cols": cols,
        "acc": acc,
        "labels": labels,
        "sleeve_equity": sleeve_equity,
    }


def _on_whole_index(equity: np.ndarray, at: np.ndarray, n: int, init_cash: float) -> np.ndarray:
    """A sleeve's equity (on its own bars, positions ``at`` of the whole index) on every bar: it only
    changes on its own symbols' bars, so it is carried forward between them (its cash before)."""
    out = np.full(n, init_cash)
    if len(at):
        last = np.full(n, -1, dtype=np.int64)
        last[at] = np.arange(len(at))
        np.maximum.accumulate(last, out=last)
        seen = last >= 0
        out[seen] = equity[last[seen]]
    return out


def _held_bars(trades: np.ndarray, n: int) -> np.ndarray:
    """Whether any position is held at each bar's close, from the trade records."""
    delta = np.zeros(n + 1)
    entry = trades[:, L.TR_ENTRY_BAR].astype(np.int64)
    exit_ = trades[:, L.TR_EXIT_BAR].astype(np.int64)
    exit_ = np.where(exit_ < 0, n, exit_)
    np.add.at(delta, entry, 1.0)
    np.add.at(delta, exit_, -1.0)
    return np.cumsum(delta[:n]) > 0
