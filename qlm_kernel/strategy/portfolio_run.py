"""Run a strategy over a universe: per-symbol signals, aligned to the union of timestamps, through the
grouped engine (shared cash). The unrecorded portfolio backtest behind ``qlm.backtest_portfolio``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.engine.group_api import rebalance_universe, simulate_universe
from qlm_kernel.engine.portfolio_result import PortfolioResult
from qlm_kernel.engine.settings import BacktestSettings, closest, split_settings
from qlm_kernel.errors import ConfigError, DataError, StrategyError
from qlm_kernel.strategy.loader import resolve_strategy
from qlm_kernel.strategy.run import scalar_stop, signal_arrays
from qlm_kernel.strategy.signals import SIGNAL_FIELDS, STOP_FIELDS, Signals
from qlm_kernel.strategy.weights import TargetWeights


def backtest_portfolio(strategy: Any, data: Any, **kwargs: Any) -> PortfolioResult:
    """Backtest a portfolio: every symbol of ``data`` trades from one shared cash balance.

    ``strategy``: a Strategy (class, instance, file or name) applied to each symbol's own bars, a dict
    symbol -> `Signals`, `Signals` whose fields are wide boolean DataFrames (bars x symbols), or
    `TargetWeights` (rebalancing to target weights; stops do not apply).
    ``data``: a `Universe`, a stored universe name, or a dict symbol -> OHLCV frame or file path.
    Keyword arguments are the single-asset settings (applied per order: ``size``/``size_type``
    size each entry from the buying power left at that moment) or strategy parameters. The group's
    rules (order of execution in a bar, buying power, missing bars, margin) are in docs/concepts.md
    "Portfolio mode".
    """
    started = time.perf_counter()
    cash = kwargs.pop("cash", None)
    settings, params = split_settings(kwargs)
    universe = as_universe(data)
    orders = None
    extra: dict[str, Any] = {}
    if _is_sleeves(strategy):
        from qlm_kernel.strategy.sleeves import run_sleeves

        if params:
            raise ConfigError(
                f"{next(iter(params))!r}: with sleeves, strategy parameters go in each Sleeve",
                hint="Sleeve('sma_cross', ['AAA'], fast=10)", code="BAD_SETTING", field=next(iter(params)),
            )
        run = run_sleeves(strategy, universe, settings, cash or "shared")
        universe, equity, trades = run["universe"], run["equity"], run["trades"]
        cols, acc = run["cols"], run["acc"]
        name, used_params = "Sleeves", run["params"]
        extra = {"labels": run["labels"], "sleeve_equity": run["sleeve_equity"]}
    elif cash is not None:
        raise ConfigError("cash= applies to sleeves (several strategies); one strategy shares one balance",
                          hint="qlm.backtest_portfolio([qlm.Sleeve(...), qlm.Sleeve(...)], data, "
                               "cash='sleeves')",
                          code="BAD_SETTING", field="cash")
    elif isinstance(strategy, TargetWeights):
        _refuse_for_weights(settings, params)
        weights = strategy.to_array(universe.index, universe.symbols)
        equity, trades, cols, acc, orders = rebalance_universe(universe, weights, strategy.drift, settings)
        name, used_params = "TargetWeights", {"rebalance": strategy.rebalance, "drift": strategy.drift}
    else:
        arrays, name, used_params = portfolio_signals(strategy, universe, settings, params)
        equity, trades, cols, acc = simulate_universe(universe, *arrays, settings)
    return PortfolioResult(
        data=universe,
        settings=settings,
        params=used_params,
        strategy_name=name,
        equity=equity,
        trade_records=trades,
        accumulators=acc,
        trade_columns=cols,
        order_records=orders,
        **extra,
        meta={"duration_s": time.perf_counter() - started, "universe": universe.name,
              "universe_fingerprint": universe.fingerprint},
    )


def _is_sleeves(strategy: Any) -> bool:
    from qlm_kernel.strategy.sleeves import Sleeve

    items = strategy if isinstance(strategy, (list, tuple)) else ()
    return bool(items) and all(isinstance(s, Sleeve) for s in items)


def _refuse_for_weights(settings: BacktestSettings, params: dict[str, Any]) -> None:
    """Target weights size every order themselves and have no entries to stop: say so."""
    given = [k for k in ("sl_stop", "tp_stop", "tsl_stop") if getattr(settings, k) is not None]
    if settings.size is not None:
        given.append("size")
    if given or params:
        name = given[0] if given else next(iter(params))
        raise ConfigError(
            f"{name!r} does not apply to TargetWeights: each order trades a symbol to its target weight",
            hint="drop it; weights set the sizes (fractions of the portfolio's value), and stops need "
                 "entry signals (use Signals or a Strategy for stops)",
            code="BAD_SETTING", field=name,
        )


def as_universe(data: Any) -> Any:
    """A `Universe` from a universe, a stored universe's name, or a dict symbol -> frame / path."""
    from qlm_kernel.data.universe import Universe, load_universe

    if isinstance(data, Universe):
        return data
    if isinstance(data, (str, Mapping, list, tuple)):
        return load_universe(data)
    raise DataError(
        f"portfolio data must be a Universe, a universe name or a dict symbol -> OHLCV frame, "
        f"got {type(data).__name__}",
        hint="qlm.load_universe('my_universe') or {'AAPL': df_aapl, 'MSFT': df_msft}",
        code="DATA_BAD_INPUT",
    )


def portfolio_signals(
    strategy: Any, universe: Any, settings: BacktestSettings, params: dict[str, Any],
    frames: Mapping[str, pd.DataFrame] | None = None,
) -> tuple[tuple[np.ndarray, ...], str, dict[str, Any]]:
    """The wide (bars x symbols) signal and stop arrays for the grouped kernel, the strategy's name
    and the parameters used. ``frames``: the symbols' own frames when the caller holds them (an
    optimizer reuses them across trials), else read from the universe."""
    if isinstance(strategy, Signals) and _is_wide(strategy):
        return _wide_signals(strategy, universe, settings), "Signals", {}
    per_symbol: dict[str, Any]
    if isinstance(strategy, Mapping):
        unknown = [s for s in strategy if s not in universe.symbols]
        if unknown:
            raise StrategyError(
                f"signals given for {unknown[0]!r}, which is not in universe {universe.name!r}",
                hint=_symbols_hint(str(unknown[0]), universe.symbols),
                code="UNKNOWN_SYMBOL",
                symbol=str(unknown[0]),
            )
        per_symbol = {sym: resolve_strategy(strategy[sym], **params) for sym in strategy}
        name, used = "Signals by symbol", dict(params)
    else:
        strat = resolve_strategy(strategy, **params)
        per_symbol = {sym: strat for sym in universe.symbols}
        cls = type(strat)
        name, used = getattr(cls, "name", cls.__name__), dict(strat.params)
    n, m = universe.close.shape
    sig = [np.zeros((n, m), dtype=bool, order="F") for _ in SIGNAL_FIELDS]  # a column's bars contiguous
    stops: list[list[np.ndarray | None]] = [[None] * m for _ in STOP_FIELDS]
    for sym, strat in per_symbol.items():
        j = universe.column(sym)
        rows = np.flatnonzero(universe.has_bar[:, j])
        arrays = signal_arrays(strat, frames[sym] if frames is not None else universe.frame(sym), settings)
        for wide, own in zip(sig, arrays[:4], strict=True):
            wide[rows, j] = own
        for slot, own in zip(stops, arrays[4:], strict=True):
            slot[j] = own if own.shape[0] == 1 else _scatter(own, rows, n)
    defaults = signal_arrays_defaults(settings)
    wide_stops = tuple(_stack_stops(slot, default, n) for slot, default in zip(stops, defaults, strict=True))
    return (*sig, *wide_stops), name, used


def signal_arrays_defaults(settings: BacktestSettings) -> tuple[np.ndarray, ...]:
    """The settings' stops as length-1 arrays (NaN = none), for symbols without signals of their own."""
    # copies: the shared NaN array is read-only, and a read-only array is another Numba signature
    return tuple(scalar_stop(getattr(settings, field)).copy() for field in STOP_FIELDS)


def _scatter(own: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.nan)
    out[rows] = own
    return out


def _stack_stops(per_column: list[np.ndarray | None], default: np.ndarray, n: int) -> np.ndarray:
    """(1, 1) when every symbol has the same scalar stop, else (bars x symbols)."""
    filled = [default if a is None else a for a in per_column]
    scalars = {float(a[0]) if a[0] == a[0] else None for a in filled if a.shape[0] == 1}
    if all(a.shape[0] == 1 for a in filled) and len(scalars) <= 1:
        return np.ascontiguousarray(filled[0].reshape(1, 1)) if filled else default.reshape(1, 1)
    out = np.empty((n, len(filled)))
    for j, a in enumerate(filled):
        out[:, j] = a[0] if a.shape[0] == 1 else a
    return out


def _is_wide(signals: Signals) -> bool:
    return any(isinstance(getattr(signals, f), pd.DataFrame) for f in SIGNAL_FIELDS)


def _wide_signals(signals: Signals, universe: Any, settings: BacktestSettings) -> tuple[np.ndarray, ...]:
    """Signals whose fields are (bars x symbols) boolean frames on the universe's index: each frame's
    values as they are (Fortran-ordered, no copy) when its columns are the universe's symbols in order;
    a missing short field is None (no short signal), a missing long field all False."""
    n, m = universe.close.shape
    out: list[np.ndarray | None] = []
    for field in SIGNAL_FIELDS:
        value = getattr(signals, field)
        if value is None:
            long_field = field in ("entry_long", "exit_long")
            out.append(np.zeros((n, m), dtype=bool, order="F") if long_field else None)
            continue
        if not isinstance(value, pd.DataFrame):
            raise StrategyError(
                f"Signals.{field} must be a (bars x symbols) boolean DataFrame like the other fields, "
                f"got {type(value).__name__}",
                hint="give every field as a DataFrame with the universe's index and symbol columns",
                code="BAD_SIGNALS", field=field,
            )
        unknown = [c for c in value.columns if c not in universe.symbols]
        if unknown:
            raise StrategyError(
                f"Signals.{field} has column {unknown[0]!r}, which is not in universe {universe.name!r}",
                hint=_symbols_hint(str(unknown[0]), universe.symbols),
                code="UNKNOWN_SYMBOL", field=field, symbol=str(unknown[0]),
            )
        if len(value) != n or not value.index.equals(universe.index):
            raise StrategyError(
                f"Signals.{field} has {len(value)} rows on another index; the universe has {n} bars",
                hint="build the frames on universe.index (reindex(universe.index, fill_value=False))",
                code="BAD_SIGNALS", field=field,
            )
        if any(dtype != np.bool_ for dtype in value.dtypes):
            raise StrategyError(
                f"Signals.{field} must be boolean; it has dtypes {sorted(set(map(str, value.dtypes)))}",
                hint="compare to get booleans (fast > slow), and fillna(False) before astype(bool)",
                code="BAD_SIGNALS", field=field,
            )
        symbols = list(universe.symbols)
        same = list(value.columns) == symbols
        aligned = value if same else value.reindex(columns=symbols, fill_value=False)
        out.append(aligned.to_numpy())
    defaults = signal_arrays_defaults(settings)
    return (*out, *(d.reshape(1, 1) for d in defaults))


def _symbols_hint(symbol: str, symbols: tuple[str, ...]) -> str:
    near = closest(symbol, symbols)
    return (f"did you mean {near!r}? " if near else "") + f"symbols: {', '.join(symbols)}"
