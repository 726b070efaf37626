"""`BacktestResult`: what a backtest returns. Tables are built lazily from the kernels' arrays."""

from __future__ import annotations

import functools
import html
import math
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.engine import layout as L
from qlm_kernel.engine.caveats import liquidation_warning, result_warnings
from qlm_kernel.engine.settings import BacktestSettings
from qlm_kernel.engine.stats import bar_returns, drawdown, stats_series
from qlm_kernel.jsonsafe import json_safe

TRADE_COLUMNS = (
    "entry_time",
    "exit_time",
    "entry_bar",
    "exit_bar",
    "direction",
    "size",
    "entry_price",
    "exit_price",
    "pnl",
    "return",
    "fees",
    "exit_reason",
    "status",
)


DIRECTION_DTYPE = pd.CategoricalDtype(["long", "short"])
STATUS_DTYPE = pd.CategoricalDtype(["closed", "open"])
EXIT_REASON_DTYPE = pd.CategoricalDtype(list(L.EXIT_REASONS))


class BacktestResult:
    """Stats, trades, orders, equity, drawdown and returns of one backtest, plus plot and report.

    Everything derives from the kernel's outputs (equity array, trade records, accumulators);
    DataFrames are built on first access, so running a backtest costs only the simulation.
    """

    def __init__(
        self,
        *,
        data: pd.DataFrame,
        settings: BacktestSettings,
        params: dict[str, Any],
        strategy_name: str,
        equity: np.ndarray,
        trade_records: np.ndarray,
        accumulators: np.ndarray,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.data = data
        self.settings = settings
        self.params = dict(params)
        self.strategy_name = strategy_name
        self._equity = equity
        self._trades = trade_records
        self._acc = accumulators
        self.meta = dict(meta or {})

    # --- tables -------------------------------------------------------------------------------
    @functools.cached_property
    def stats(self) -> pd.Series:
        """Summary statistics (see `qlm_kernel.engine.stats` for definitions)."""
        return stats_series(self._acc, self.settings.init_cash, self.data.index, self._close)

    @functools.cached_property
    def warnings(self) -> list[dict[str, Any]]:
        """What to be wary of in this run (`qlm_kernel.engine.caveats`): code, message, hint each."""
        liquidation = None
        bar = int(self._acc[L.ST_LIQUIDATION_BAR])
        if bar >= 0:  # nothing trades after a liquidation: it is the last trade
            price = float(self._trades[-1, L.TR_EXIT_PRICE])
            liquidation = liquidation_warning(self.data.index[bar], price, self.settings.to_dict())
        return result_warnings(self.stats, liquidation=liquidation)

    @functools.cached_property
    def equity(self) -> pd.Series:
        """Portfolio value (cash + position marked at the close) at every bar."""
        return pd.Series(self._equity, index=self.data.index, name="equity", copy=False)

    @functools.cached_property
    def drawdown(self) -> pd.Series:
        """Equity / running peak - 1 at every bar (0 at new highs, negative below); the peak starts at
        the initial cash; floored at -1 (`stats.drawdown`)."""
        dd = drawdown(self._equity, self.settings.init_cash)
        return pd.Series(dd, index=self.data.index, name="drawdown")

    @functools.cached_property
    def returns(self) -> pd.Series:
        """Simple per-bar returns of equity, the first bar against the initial cash: the one series the
        return statistics use (`stats.bar_returns`). NaN where the previous equity is not positive (a
        ruined account has no return) and after a liquidation (the account is closed)."""
        out = bar_returns(self._equity, self.settings.init_cash, int(self._acc[L.ST_N_R]))
        return pd.Series(out, index=self.data.index, name="returns")

    @functools.cached_property
    def trades(self) -> pd.DataFrame:
        """One row per round trip; an open position at the end is a row with status 'open'."""
        rec = self._trades
        index = self.data.index
        entry_bar = rec[:, L.TR_ENTRY_BAR].astype(np.int64)
        exit_bar = rec[:, L.TR_EXIT_BAR].astype(np.int64)
        is_open = exit_bar < 0
        size = rec[:, L.TR_SIZE]
        frame = pd.DataFrame(
            {
                "entry_time": index.take(entry_bar),
                "exit_time": index.take(exit_bar, allow_fill=True, fill_value=pd.NaT),  # -1: open
                "entry_bar": entry_bar,
                "exit_bar": exit_bar,
                "direction": pd.Categorical.from_codes((size < 0).astype(np.int8), dtype=DIRECTION_DTYPE),
                "size": np.abs(size),
                "entry_price": rec[:, L.TR_ENTRY_PRICE],
                "exit_price": rec[:, L.TR_EXIT_PRICE],
                "pnl": rec[:, L.TR_PNL],
                "return": rec[:, L.TR_RETURN],
                "fees": rec[:, L.TR_ENTRY_FEES] + rec[:, L.TR_EXIT_FEES],
                "exit_reason": pd.Categorical.from_codes(
                    rec[:, L.TR_EXIT_REASON].astype(np.int8), dtype=EXIT_REASON_DTYPE
                ),
                "status": pd.Categorical.from_codes(is_open.astype(np.int8), dtype=STATUS_DTYPE),
            },
            columns=list(TRADE_COLUMNS),
            copy=False,
        )
        return frame

    @functools.cached_property
    def orders(self) -> pd.DataFrame:
        """Every fill with its own fees, in time order (a reversal is two orders: exit, then entry)."""
        rec = self._trades
        k = len(rec)
        long = rec[:, L.TR_SIZE] > 0
        closed = rec[:, L.TR_EXIT_BAR] >= 0
        trade = np.arange(k)
        names = np.asarray(L.EXIT_REASONS, dtype=object)
        exit_reasons = names[rec[closed, L.TR_EXIT_REASON].astype(np.int64)]
        bar = np.concatenate((rec[:, L.TR_ENTRY_BAR], rec[closed, L.TR_EXIT_BAR])).astype(np.int64)
        is_exit = np.concatenate((np.zeros(k, bool), np.ones(int(closed.sum()), bool)))
        orders = pd.DataFrame(
            {
                "bar": bar,
                "side": np.where(np.concatenate((long, long[closed])) != is_exit, "buy", "sell"),
                "size": np.abs(np.concatenate((rec[:, L.TR_SIZE], rec[closed, L.TR_SIZE]))),
                "price": np.concatenate((rec[:, L.TR_ENTRY_PRICE], rec[closed, L.TR_EXIT_PRICE])),
                "fees": np.concatenate((rec[:, L.TR_ENTRY_FEES], rec[closed, L.TR_EXIT_FEES])),
                "kind": np.where(is_exit, "exit", "entry"),
                "reason": np.concatenate((np.full(k, "signal", dtype=object), exit_reasons)),
                "trade": np.concatenate((trade, trade[closed])),
            }
        )
        # exits sort before entries on the same bar (a reversal closes first)
        order = np.lexsort((orders["trade"].to_numpy(), ~is_exit, bar))
        orders = orders.iloc[order].reset_index(drop=True)
        orders.insert(0, "time", self.data.index.take(orders["bar"].to_numpy()))
        return orders

    @functools.cached_property
    def position(self) -> pd.Series:
        """Signed units held at each bar's close, rebuilt from the order ledger."""
        return pd.Series(self._ledger()[0], index=self.data.index, name="position")

    @functools.cached_property
    def cash(self) -> pd.Series:
        """Cash at each bar's close, rebuilt from the order ledger (fills and fees)."""
        return pd.Series(self._ledger()[1], index=self.data.index, name="cash")

    def _ledger(self) -> tuple[np.ndarray, np.ndarray]:
        """Position and cash per bar from the orders alone (independent of the kernel's equity)."""
        n = len(self.data)
        orders = self.orders
        sign = np.where(orders["side"] == "buy", 1.0, -1.0)
        units = sign * orders["size"].to_numpy()
        flow = -units * orders["price"].to_numpy() - orders["fees"].to_numpy()
        bars = orders["bar"].to_numpy()
        d_pos = np.bincount(bars, weights=units, minlength=n)[:n]
        d_cash = np.bincount(bars, weights=flow, minlength=n)[:n]
        return np.cumsum(d_pos), self.settings.init_cash + np.cumsum(d_cash)

    @functools.cached_property
    def _close(self) -> np.ndarray:
        from qlm_kernel.engine.api import price_arrays

        return price_arrays(self.data)[3]

    # --- presentation -------------------------------------------------------------------------
    def plot(self, *, max_points: int = 8_000) -> Any:
        """Plotly figure: price with trades, equity vs buy & hold, drawdown, exposure (one time axis).

        Long series keep each pixel bucket's first, last, lowest and highest point (at most
        ``max_points`` per line), so spikes survive; past a few hundred trades markers are grouped.
        """
        from qlm_kernel.engine.report import backtest_figure

        return backtest_figure(self, max_points=max_points)

    def bootstrap(self, n: int = 1000, seed: int | None = None, method: str = "block",
                  block_size: float | None = None, confidence: float = 0.9) -> Any:
        """Confidence bands of the headline stats (Sharpe, max drawdown, CAGR, final value) and an equity
        fan chart, by a stationary block bootstrap of the returns (``method="block"``) or by shuffling the
        order of the trades (``"trades"``): a `qlm_kernel.engine.bootstrap.BootstrapResult`."""
        from qlm_kernel.engine.bootstrap import bootstrap

        return bootstrap(self, n=n, seed=seed, method=method, block_size=block_size, confidence=confidence)

    def to_dict(self, *, include_trades: bool = True, include_equity: bool = False) -> dict[str, Any]:
        """JSON-safe summary: strategy, params, settings, stats, trades (and optionally equity)."""
        out: dict[str, Any] = {
            "strategy": self.strategy_name,
            "params": json_safe(self.params),
            "settings": self.settings.to_dict(),
            "stats": {k: json_safe(v) for k, v in self.stats.items()},
            "warnings": json_safe(self.warnings),
            "meta": json_safe(self.meta),
        }
        if include_trades:
            out["trades"] = [
                {k: json_safe(v) for k, v in row.items()} for row in self.trades.to_dict("records")
            ]
        if include_equity:
            out["equity"] = {
                "time": [ts.isoformat() for ts in self.data.index],
                "value": [float(v) for v in self._equity],
            }
        return out

    def report_html(self, *, plotlyjs: str = "inline") -> str:
        """The tearsheet as one HTML page (`qlm_kernel.engine.report`): warnings, grouped stats beside
        buy & hold, settings, charts and every trade. ``plotlyjs="cdn"`` links plotly.js instead of
        inlining it (a small file that needs the network)."""
        from qlm_kernel.engine.report import report_html

        return report_html(self, plotlyjs=plotlyjs)

    def save_report(self, path: str, *, plotlyjs: str = "inline") -> str:
        """Write `report_html()` to ``path``; returns the path."""
        text = self.report_html(plotlyjs=plotlyjs)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path

    def _repr_html_(self) -> str:
        """Notebook display: the title, any warnings and the stats table with human labels."""
        from qlm_kernel.engine.report.tables import title, warnings
        from qlm_kernel.formatting import stat_rows

        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(label)}</th><td>{html.escape(text)}</td></tr>"
            for label, text in stat_rows(self.stats)
        )
        notes = "".join(
            f"<div style='color:#9a6700'><b>{html.escape(w['code'])}</b> {html.escape(w['message'])}</div>"
            for w in warnings(self)
        )
        return f"<div><b>Backtest</b> {html.escape(title(self))}{notes}<table>{rows}</table></div>"

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"<BacktestResult {self.strategy_name} bars={s['bars']} final_value={s['final_value']:.2f} "
            f"total_return={s['total_return']:.2%} sharpe={_fmt(s['sharpe'])} trades={s['n_trades']}>"
        )


def _fmt(value: Any) -> str:
    """A stat value for ``repr``: floats to 6 significant digits, NaN as nan."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.6g}"
    return str(value)
