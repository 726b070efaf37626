"""How statistics read for people: one table of labels and kinds, used by the CLI and the reports.

Standard library only, so the CLI's ``--help`` stays instant.
"""

from __future__ import annotations

import math
from typing import Any

# stat key -> (label, format); unknown keys (added later by the engine) get a generic format.
STAT_FORMATS: dict[str, tuple[str, str]] = {
    "start": ("Start", "text"),
    "end": ("End", "text"),
    "bars": ("Bars", "int"),
    "init_cash": ("Initial cash", "money"),
    "final_value": ("Final value", "money"),
    "total_return": ("Total return", "pct"),
    "benchmark_return": ("Buy & hold return", "pct"),
    "cagr": ("CAGR", "pct"),
    "volatility": ("Volatility (ann.)", "pct"),
    "sharpe": ("Sharpe", "ratio"),
    "sortino": ("Sortino", "ratio"),
    "calmar": ("Calmar", "ratio"),
    "max_drawdown": ("Max drawdown", "pct"),
    "max_drawdown_bars": ("Max drawdown bars", "int"),
    "n_trades": ("Trades", "int"),
    "n_closed": ("Closed trades", "int"),
    "n_long": ("Long trades", "int"),
    "n_short": ("Short trades", "int"),
    "win_rate": ("Win rate", "pct"),
    "profit_factor": ("Profit factor", "ratio"),
    "avg_trade_return": ("Avg trade return", "pct"),
    "best_trade": ("Best trade", "pct"),
    "worst_trade": ("Worst trade", "pct"),
    "expectancy": ("Expectancy (per trade)", "money"),
    "exposure": ("Exposure", "pct"),
    "fees_paid": ("Fees paid", "money"),
    "n_orders": ("Orders", "int"),
    "rejected_orders": ("Rejected orders", "int"),
    "bars_per_year": ("Bars per year", "num"),
}


def fmt_number(value: Any, digits: int = 4) -> str:
    """A compact human number: ints as is, floats to ``digits`` significant digits, NaN as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def format_stat(kind: str, value: Any) -> str:
    """One statistic for humans: percentages, money with thousands separators, ratios to 3 decimals."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return fmt_number(value)
    if kind == "pct" and isinstance(value, (int, float)):
        return f"{value * 100:,.2f}%"
    if kind == "money" and isinstance(value, (int, float)):
        return f"{value:,.2f}"
    if kind == "ratio" and isinstance(value, (int, float)):
        return f"{value:,.3f}"
    if kind == "num" and isinstance(value, (int, float)):
        return f"{value:,.1f}"
    if kind == "int" and isinstance(value, (int, float)):
        return f"{int(value):,}"
    return fmt_number(value)


def stat_text(key: str, value: Any) -> str:
    """A statistic by its stats key, formatted the way `STAT_FORMATS` says (ratio when unknown)."""
    return format_stat(STAT_FORMATS.get(key, (key, "ratio"))[1], value)
