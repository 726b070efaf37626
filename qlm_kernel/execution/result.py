"""`PaperResult` (what a paper replay or session returns) and its divergence report against a backtest."""

from __future__ import annotations

import functools
import html
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.execution.trades import build_trades
from qlm_kernel.execution.types import Fill, Order
from qlm_kernel.jsonsafe import json_safe


def match_labels(indicator: pd.Series) -> pd.Series:
    """An outer merge's ``_merge`` column as ``both`` / ``paper_only`` / ``backtest_only``."""
    labels = {"both": "both", "left_only": "paper_only", "right_only": "backtest_only"}
    return indicator.map(labels).astype(str)


class _ResultCore:
    """What `PaperResult` and `PaperPortfolioResult` share: the fills and orders tables, the final
    value and the JSON summary."""

    index: pd.DatetimeIndex
    _fills: list[Fill]
    _orders: list[Order]
    _equity: np.ndarray
    refusals: list[dict[str, Any]]
    settings: dict[str, Any]
    params: dict[str, Any]
    strategy_name: str
    meta: dict[str, Any]
    _empty_fills_tz: str | None = None  # the bar_time dtype of a run without fills

    @functools.cached_property
    def fills(self) -> pd.DataFrame:
        """Every fill in execution order (price after slippage, ref_price before), with its bar's time."""
        cols = list(Fill.__dataclass_fields__)
        frame = pd.DataFrame([f.to_dict() for f in self._fills], columns=cols)
        frame.insert(
            0,
            "bar_time",
            self.index.take(frame["bar"].to_numpy(dtype=np.int64), allow_fill=True, fill_value=pd.NaT)
            if len(frame)
            else pd.DatetimeIndex([], tz=self._empty_fills_tz),
        )
        return frame

    @functools.cached_property
    def orders(self) -> pd.DataFrame:
        """Every order with its final state (refused orders have status 'rejected' and an error)."""
        cols = list(Order.__dataclass_fields__)
        return pd.DataFrame([o.to_dict() for o in self._orders], columns=cols)

    @property
    def final_value(self) -> float:
        """Equity at the last bar."""
        return float(self._equity[-1]) if len(self._equity) else float(self.settings.get("init_cash", np.nan))

    @property
    def trades(self) -> pd.DataFrame:
        raise NotImplementedError

    def _dict_head(self) -> dict[str, Any]:
        return {"strategy": self.strategy_name}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary: settings, params, headline numbers, trades, refusals."""
        return json_safe(
            {
                **self._dict_head(),
                "params": self.params,
                "settings": self.settings,
                "meta": self.meta,
                "final_value": self.final_value,
                "n_fills": len(self._fills),
                "n_orders": len(self._orders),
                "refusals": self.refusals,
                "trades": self.trades.to_dict("records"),
            }
        )


class PaperResult(_ResultCore):
    """Trades (the columns of `BacktestResult.trades`), orders, fills, equity and refusals of a paper run."""

    def __init__(
        self,
        *,
        index: pd.DatetimeIndex,
        last_close: float,
        fills: list[Fill],
        orders: list[Order],
        equity: np.ndarray,
        refusals: list[dict[str, Any]],
        settings: dict[str, Any],
        params: dict[str, Any],
        strategy_name: str,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.index = index
        self.last_close = last_close
        self._fills = list(fills)
        self._orders = list(orders)
        self._equity = np.asarray(equity, dtype=np.float64)
        self.refusals = list(refusals)
        self.settings = dict(settings)
        self.params = dict(params)
        self.strategy_name = strategy_name
        self.meta = dict(meta or {})

    @functools.cached_property
    def trades(self) -> pd.DataFrame:
        """One row per round trip, same columns and dtypes as `BacktestResult.trades`."""
        return build_trades(self._fills, self.index, self.last_close)

    @functools.cached_property
    def equity(self) -> pd.Series:
        """Cash + position at each bar's close."""
        return pd.Series(
            self._equity,
            index=self.index[-len(self._equity) :] if len(self._equity) else self.index[:0],
            name="equity",
        )

    def divergence(self, backtest_result: Any) -> DivergenceReport:
        """Per-trade price and timing differences against ``backtest_result`` (see `DivergenceReport`)."""
        return DivergenceReport.compare(self, backtest_result)

    def __repr__(self) -> str:
        return (
            f"<PaperResult {self.strategy_name} bars={len(self.index)} trades={len(self.trades)} "
            f"fills={len(self._fills)} final_value={self.final_value:.2f}>"
        )


def _signal_bars(trades: pd.DataFrame, fill_mode: str) -> list[int]:
    bars = trades.attrs.get("signal_bars")
    if bars is not None and all(b is not None for b in bars):
        return [int(b) for b in bars]
    shift = 1 if fill_mode == "next_open" else 0
    return [int(b) - shift for b in trades["entry_bar"]]


class DivergenceReport:
    """Paper trades matched to backtest trades by the bar whose signal opened them (and direction).

    ``table``: one row per trade of either side with entry/exit times, prices, the delay and the
    price difference in bps *against the trader* (positive = the paper fill was worse), sizes, pnl
    and exit reasons; ``matched`` says ``both``, ``paper_only`` or ``backtest_only``. ``summary``:
    counts, mean/max price differences, mean delays and the pnl difference.
    """

    def __init__(self, table: pd.DataFrame, summary: dict[str, Any]) -> None:
        self.table = table
        self.summary = summary

    @classmethod
    def compare(cls, paper: PaperResult, backtest: Any) -> DivergenceReport:
        """Build the report for ``paper`` against a `BacktestResult`."""
        pt = paper.trades.copy()
        bt = backtest.trades.copy()
        pt["signal_bar"] = _signal_bars(paper.trades, "next_open")
        bt["signal_bar"] = _signal_bars(bt, getattr(backtest.settings, "fill", "next_open"))
        keys = ["signal_bar", "direction"]
        pt["direction"] = pt["direction"].astype(str)
        bt["direction"] = bt["direction"].astype(str)
        fields = [
            "entry_time",
            "exit_time",
            "entry_price",
            "exit_price",
            "size",
            "pnl",
            "fees",
            "exit_reason",
            "status",
        ]
        merged = (
            pt[keys + fields]
            .merge(bt[keys + fields], on=keys, how="outer", suffixes=("_paper", "_backtest"), indicator=True)
            .sort_values("signal_bar", kind="stable")
        )
        merged["matched"] = match_labels(merged.pop("_merge"))
        sign = np.where(merged["direction"] == "long", 1.0, -1.0)
        merged["entry_delay"] = merged["entry_time_paper"] - merged["entry_time_backtest"]
        merged["exit_delay"] = merged["exit_time_paper"] - merged["exit_time_backtest"]
        merged["entry_diff_bps"] = (
            sign * (merged["entry_price_paper"] / merged["entry_price_backtest"] - 1) * 1e4
        )
        merged["exit_diff_bps"] = (
            -sign * (merged["exit_price_paper"] / merged["exit_price_backtest"] - 1) * 1e4
        )
        merged["pnl_diff"] = merged["pnl_paper"] - merged["pnl_backtest"]
        for col in ("exit_reason_paper", "exit_reason_backtest", "status_paper", "status_backtest"):
            merged[col] = merged[col].astype(object)
        order = [
            "signal_bar",
            "direction",
            "matched",
            "entry_time_paper",
            "entry_time_backtest",
            "entry_delay",
            "entry_price_paper",
            "entry_price_backtest",
            "entry_diff_bps",
            "exit_time_paper",
            "exit_time_backtest",
            "exit_delay",
            "exit_price_paper",
            "exit_price_backtest",
            "exit_diff_bps",
            "size_paper",
            "size_backtest",
            "pnl_paper",
            "pnl_backtest",
            "pnl_diff",
            "fees_paper",
            "fees_backtest",
            "exit_reason_paper",
            "exit_reason_backtest",
            "status_paper",
            "status_backtest",
        ]
        table = merged[order].reset_index(drop=True)
        both = table[table["matched"] == "both"]
        closed = both[(both["status_paper"] == "closed") & (both["status_backtest"] == "closed")]

        def stat(series: pd.Series, fn: str) -> float:
            s = series.dropna()
            if s.empty:
                return 0.0
            return float(getattr(s.abs() if fn == "maxabs" else s, "max" if fn == "maxabs" else fn)())

        def seconds(series: pd.Series) -> float:
            s = series.dropna()
            return float(s.dt.total_seconds().mean()) if len(s) else 0.0

        summary = {
            "n_paper": len(pt),
            "n_backtest": len(bt),
            "n_matched": len(both),
            "n_paper_only": int((table["matched"] == "paper_only").sum()),
            "n_backtest_only": int((table["matched"] == "backtest_only").sum()),
            "mean_entry_diff_bps": stat(both["entry_diff_bps"], "mean"),
            "max_abs_entry_diff_bps": stat(both["entry_diff_bps"], "maxabs"),
            "mean_exit_diff_bps": stat(closed["exit_diff_bps"], "mean"),
            "max_abs_exit_diff_bps": stat(closed["exit_diff_bps"], "maxabs"),
            "mean_entry_delay_s": seconds(both["entry_delay"]),
            "mean_exit_delay_s": seconds(closed["exit_delay"]),
            "pnl_paper": float(pt["pnl"].sum()),
            "pnl_backtest": float(bt["pnl"].sum()),
            "pnl_diff": float(pt["pnl"].sum() - bt["pnl"].sum()),
            "final_value_paper": paper.final_value,
            "final_value_backtest": float(backtest.stats["final_value"]),
        }
        return cls(table, summary)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary and table."""
        return json_safe({"summary": self.summary, "table": self.table.to_dict("records")})

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>"
            for k, v in self.summary.items()
        )
        return f"<div><b>Paper vs backtest divergence</b><table>{rows}</table></div>"

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<DivergenceReport matched={s['n_matched']} paper_only={s['n_paper_only']} "
            f"backtest_only={s['n_backtest_only']} mean_entry_diff_bps={s['mean_entry_diff_bps']:.3f} "
            f"pnl_diff={s['pnl_diff']:.2f}>"
        )


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)
