"""Backtest statistics as display rows: a label and a formatted value per stat."""

from __future__ import annotations

from typing import Any

from qlm_kernel.widgets.compact import finite

PERCENT = {
    "total_return",
    "benchmark_return",
    "cagr",
    "volatility",
    "max_drawdown",
    "win_rate",
    "exposure",
    "avg_trade_return",
    "best_trade",
    "worst_trade",
}
ORDER = [
    "total_return",
    "benchmark_return",
    "cagr",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "volatility",
    "n_trades",
    "win_rate",
    "profit_factor",
    "exposure",
    "final_value",
    "fees_paid",
]
SKIP = {"start", "end"}


def format_stat(key: str, value: Any) -> str:
    """One statistic as text: fractions as percent, counts as integers, others to 4 significant digits."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    number = finite(value)
    if number is None:
        return "n/a" if isinstance(value, float) else str(value)
    if key in PERCENT:
        return f"{number:.2%}"
    if abs(number) >= 1000:
        return f"{number:,.2f}"
    return f"{number:.4g}"


def stat_rows(stats: Any) -> list[list[str]]:
    """``[[key, text], ...]``: the headline stats first (see `ORDER`), then the rest."""
    items = dict(stats.items()) if hasattr(stats, "items") else {}
    keys = [k for k in ORDER if k in items] + [k for k in items if k not in ORDER and k not in SKIP]
    return [[str(k), format_stat(str(k), items[k])] for k in keys]
