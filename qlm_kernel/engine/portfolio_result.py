"""`PortfolioResult`: a `BacktestResult` of a group of symbols sharing cash.

The portfolio-level tables (``stats``, ``equity``, ``drawdown``, ``returns``, ``cash``, ``orders``,
``trades``, ``warnings``) mean what they mean for one asset, computed the same way; trades and orders
gain a ``symbol`` column, and the per-symbol views (positions, values, weights, per-symbol stats and
contribution, turnover, correlation of symbol returns) are added. ``data`` is the `Universe`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.engine import layout as L
from qlm_kernel.engine.caveats import result_warnings
from qlm_kernel.engine.result import BacktestResult
from qlm_kernel.engine.stats import stats_series
from qlm_kernel.engine.weight_kernels import OR_BAR, OR_COL, OR_FEES, OR_PRICE, OR_REASON, OR_UNITS
from qlm_kernel.jsonsafe import json_safe


class PortfolioResult(BacktestResult):
    """Stats, equity, trades and orders of a portfolio backtest, plus per-symbol views."""

    def __init__(
        self, *, trade_columns: np.ndarray, order_records: np.ndarray | None = None,
        labels: dict[str, tuple[str, str]] | None = None,
        sleeve_equity: dict[str, tuple[float, np.ndarray]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._trade_col = trade_columns
        self._order_records = order_records  # target-weight runs record fills; signal runs derive them
        self._labels = labels  # sleeves: column -> (sleeve, symbol); columns are SLEEVE.SYMBOL
        self._sleeve_equity = sleeve_equity  # cash="sleeves": each sleeve's (capital, equity)

    @property
    def symbols(self) -> tuple[str, ...]:
        """The universe's symbols, in column order."""
        return self.data.symbols

    # --- portfolio tables -----------------------------------------------------------------------
    @functools.cached_property
    def stats(self) -> pd.Series:
        """Portfolio statistics (single-asset definitions on the group's equity); the benchmark is the
        equal-weight buy & hold (`benchmark_growth`)."""
        return stats_series(self._acc, self.settings.init_cash, self.data.index,
                            np.array([1.0, benchmark_growth(self.data)]))

    @functools.cached_property
    def warnings(self) -> list[dict[str, Any]]:
        """What to be wary of: few trades, ruin (the group liquidated as a whole), a debt left."""
        liquidation = None
        bar = int(self._acc[L.ST_LIQUIDATION_BAR])
        if bar >= 0:
            s = self.settings
            when = self.data.index[bar]
            liquidation = {
                "code": "LIQUIDATED",
                "message": (
                    f"the portfolio was liquidated during the bar of {when}: its net liquidation value "
                    f"reached maintenance_margin={s.maintenance_margin:g} of its positions' gross value "
                    f"(leverage={s.leverage:g}); every position was closed and nothing traded afterwards"
                ),
                "hint": (
                    "size down (size=0.1, size_type='percent'), lower the leverage, or add protective "
                    "stops; judge the run by total return, not by Sharpe"
                ),
                "time": str(when),
            }
        return result_warnings(self.stats, liquidation=liquidation)

    @functools.cached_property
    def trades(self) -> pd.DataFrame:
        """One row per round trip with its ``symbol`` (sorted by entry bar, then symbol)."""
        frame = super().trades
        frame.insert(0, "symbol", self._symbol_of(self._trade_col))
        return self._with_sleeves(frame)

    @functools.cached_property
    def orders(self) -> pd.DataFrame:
        """Every fill with its ``symbol``. Signal runs: within a bar exits are listed before entries.
        Target-weight runs: the fills in execution order, ``kind`` "rebalance" or "liquidation"."""
        if self._order_records is None:
            frame = super().orders
            frame.insert(1, "symbol", self._symbol_of(self._trade_col[frame["trade"].to_numpy()]))
            return self._with_sleeves(frame)
        rec = self._order_records
        bar = rec[:, OR_BAR].astype(np.int64)
        units = rec[:, OR_UNITS]
        return pd.DataFrame({
            "time": self.data.index.take(bar),
            "symbol": self._symbol_of(rec[:, OR_COL]),
            "bar": bar,
            "side": np.where(units > 0, "buy", "sell"),
            "size": np.abs(units),
            "price": rec[:, OR_PRICE],
            "fees": rec[:, OR_FEES],
            "kind": np.where(rec[:, OR_REASON] == L.EXIT_LIQUIDATION, "liquidation", "rebalance"),
        })

    @functools.cached_property
    def position(self) -> pd.DataFrame:
        """Signed units of each symbol at each bar's close (bars x symbols), rebuilt from the orders."""
        orders = self.orders
        n, m = len(self.data), len(self.symbols)
        cols = self._order_columns()
        units = np.where(orders["side"] == "buy", 1.0, -1.0) * orders["size"].to_numpy()
        flat = orders["bar"].to_numpy() * m + cols
        delta = np.bincount(flat, weights=units, minlength=n * m)[: n * m].reshape(n, m)
        return pd.DataFrame(np.cumsum(delta, axis=0), index=self.data.index, columns=list(self.symbols))

    @property
    def positions(self) -> pd.DataFrame:
        """Alias of `position` (bars x symbols)."""
        return self.position

    @functools.cached_property
    def values(self) -> pd.DataFrame:
        """Each symbol's position value at each close (units x last close), bars x symbols."""
        held = self.position.to_numpy()
        value = np.where(held != 0.0, held * np.nan_to_num(self.data.valuation_close), 0.0)
        return pd.DataFrame(value, index=self.data.index, columns=list(self.symbols))

    @functools.cached_property
    def weights(self) -> pd.DataFrame:
        """Each symbol's position value / portfolio equity at each close (shorts negative)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            w = self.values.to_numpy() / self._equity[:, None]
        return pd.DataFrame(w, index=self.data.index, columns=list(self.symbols))

    @functools.cached_property
    def symbol_returns(self) -> pd.DataFrame:
        """Each symbol's own bar-to-bar close returns on its own bars (NaN where it has no bar)."""
        out = {}
        for j, sym in enumerate(self.symbols):
            close = pd.Series(self.data.close[:, j], index=self.data.index)
            own = close[self.data.has_bar[:, j]]
            out[sym] = own.pct_change().reindex(self.data.index)
        return pd.DataFrame(out, index=self.data.index)

    @functools.cached_property
    def correlation(self) -> pd.DataFrame:
        """Pearson correlation of the symbols' returns over the bars both have (pairwise)."""
        return self.symbol_returns.corr()

    @functools.cached_property
    def symbol_stats(self) -> pd.DataFrame:
        """Per symbol: trades, closed, wins, win rate, pnl (closed and open trades, net of fees), fees,
        contribution (pnl / initial cash), exposure (fraction of bars holding it), turnover (traded
        value / average equity) and the symbol's own buy & hold return."""
        m = len(self.symbols)
        rec = self._trades
        col = self._trade_col.astype(np.int64)
        closed = rec[:, L.TR_EXIT_BAR] >= 0
        pnl = rec[:, L.TR_PNL]

        def per_symbol(weights: np.ndarray | None = None, where: np.ndarray | None = None) -> np.ndarray:
            cols = col if where is None else col[where]
            w = weights if weights is None or where is None else weights[where]
            return np.bincount(cols, weights=w, minlength=m)[:m].astype(float)

        orders = self.orders
        traded = np.bincount(self._order_columns(),
                             weights=(orders["size"] * orders["price"]).to_numpy(), minlength=m)[:m]
        n_closed = per_symbol(where=closed)
        wins = per_symbol(where=closed & (pnl > 0))
        total_pnl = per_symbol(pnl)
        held = self.position.to_numpy() != 0.0
        first, last = symbol_rows(self.data, "first_bar"), symbol_rows(self.data, "last_bar")
        cols = np.arange(m)
        with np.errstate(divide="ignore", invalid="ignore"):
            frame = pd.DataFrame({
                "n_trades": per_symbol().astype(np.int64),
                "n_closed": n_closed.astype(np.int64),
                "win_rate": np.where(n_closed > 0, wins / n_closed, np.nan),
                "pnl": total_pnl,
                "fees": per_symbol(rec[:, L.TR_ENTRY_FEES] + rec[:, L.TR_EXIT_FEES]),
                "contribution": total_pnl / self.settings.init_cash,
                "exposure": held.mean(axis=0) if len(held) else np.full(m, np.nan),
                "turnover": traded / float(np.mean(self._equity)),
                "buy_hold_return": self.data.close[last, cols] / self.data.close[first, cols] - 1.0,
            }, index=pd.Index(list(self.symbols), name="symbol"))
        return frame

    @functools.cached_property
    def turnover(self) -> float:
        """Traded value over the run / average equity (2.0 = the book bought and sold once): the sum of
        the symbols' turnovers."""
        return float(self.symbol_stats["turnover"].sum())

    @functools.cached_property
    def _close(self) -> np.ndarray:
        """The benchmark: an equal-weight buy & hold of every symbol from its first bar, as an index."""
        return benchmark_index(self.data)

    def _order_columns(self) -> np.ndarray:
        """The kernel column of each row of `orders` (a symbol, or a sleeve's symbol)."""
        if self._order_records is not None:
            return self._order_records[:, OR_COL].astype(np.int64)
        return self._trade_col[self.orders["trade"].to_numpy()].astype(np.int64)

    def _with_sleeves(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Sleeve runs: a ``sleeve`` column, and ``symbol`` the traded symbol (not SLEEVE.SYMBOL)."""
        if not self._labels:
            return frame
        columns = frame["symbol"].astype(str)
        frame.insert(frame.columns.get_loc("symbol"), "sleeve",
                     pd.Categorical(columns.map(lambda c: self._labels[c][0])))
        frame["symbol"] = pd.Categorical(columns.map(lambda c: self._labels[c][1]))
        frame.attrs["columns"] = "sleeve.symbol"
        return frame

    @functools.cached_property
    def sleeve_stats(self) -> pd.DataFrame:
        """Per sleeve (several strategies): trades, pnl, contribution (pnl / initial cash), and with
        ``cash="sleeves"`` its capital, final value and return on that capital. Empty otherwise."""
        if not self._labels:
            return pd.DataFrame()
        trades = self.trades
        rows = []
        for sleeve in dict.fromkeys(s for s, _ in self._labels.values()):
            mine = trades[trades["sleeve"] == sleeve]
            row = {"sleeve": sleeve, "n_trades": len(mine), "pnl": float(mine["pnl"].sum()),
                   "contribution": float(mine["pnl"].sum()) / self.settings.init_cash}
            if self._sleeve_equity is not None:
                capital, eq = self._sleeve_equity[sleeve]
                final = float(eq[-1])
                row.update(capital=capital, final_value=final, total_return=final / capital - 1.0)
            rows.append(row)
        return pd.DataFrame(rows).set_index("sleeve")

    def _symbol_of(self, cols: np.ndarray) -> pd.Categorical:
        return pd.Categorical.from_codes(cols.astype(np.int64), categories=list(self.symbols))

    def to_dict(self, *, include_trades: bool = True, include_equity: bool = False) -> dict[str, Any]:
        """`BacktestResult.to_dict` plus the universe, its symbols and the per-symbol stats."""
        out = super().to_dict(include_trades=include_trades, include_equity=include_equity)
        out["universe"] = self.data.name
        out["symbols"] = list(self.symbols)
        out["symbol_stats"] = {
            sym: {k: json_safe(v) for k, v in row.items()}
            for sym, row in self.symbol_stats.to_dict("index").items()
        }
        return out

    def plot(self, *, max_points: int = 8_000) -> Any:
        """Plotly figure: equity with drawdown, equity by symbol (pnl), stacked weights, correlation."""
        from qlm_kernel.engine.report.portfolio import portfolio_figure

        return portfolio_figure(self, max_points=max_points)

    def report_html(self, *, plotlyjs: str = "inline") -> str:
        """A portfolio report page: title, warnings, stats, per-symbol stats and the figure."""
        from qlm_kernel.engine.report.portfolio import portfolio_html

        return portfolio_html(self, plotlyjs=plotlyjs)

    def _repr_html_(self) -> str:
        return f"<div><b>Portfolio</b> {len(self.symbols)} symbols{super()._repr_html_()}</div>"

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"<PortfolioResult {self.strategy_name} symbols={len(self.symbols)} bars={s['bars']} "
            f"final_value={s['final_value']:.2f} total_return={s['total_return']:.2%} trades={s['n_trades']}>"
        )


def symbol_rows(universe: Any, which: str = "first_bar") -> np.ndarray:
    """Each symbol's first (``"first_bar"``) or last (``"last_bar"``) bar as a row of the universe: the
    times the universe keeps in ``attrs`` looked up in its index (no scan of the bars x symbols mask)."""
    times = universe.attrs[which]
    return universe.index.get_indexer(pd.DatetimeIndex([times[s] for s in universe.symbols]))


def benchmark_index(universe: Any) -> np.ndarray:
    """An equal-weight buy & hold of every symbol from its first bar, as an index (1 = start): the
    mean of each symbol's last close / its first close, a symbol counting 1 before its first bar."""
    val = universe.valuation_close
    first = universe.close[symbol_rows(universe), np.arange(val.shape[1])]
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(val), 1.0, val / first).mean(axis=1)


def benchmark_growth(universe: Any) -> float:
    """Growth of an equal-weight buy & hold of every symbol over the run (from each symbol's first bar
    to its last close): what `benchmark_index` ends at, from two rows per symbol."""
    if not len(universe.index):
        return float("nan")
    first = universe.close[symbol_rows(universe), np.arange(len(universe.symbols))]
    return float(np.mean(universe.valuation_close[-1] / first))
