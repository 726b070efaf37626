"""How statistics read for people: one table of labels and kinds, and one headline list, used by the
CLI, the widgets and dashboard, the JupyterLab sidebar, the MCP summaries and the HTML reports.

Standard library only, so the CLI's ``--help`` stays instant.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
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
    "liquidated": ("Liquidated", "text"),
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

HEADLINE_STATS = ("final_value", "total_return", "sharpe", "max_drawdown", "n_trades")
"""The few numbers that summarize a run everywhere (events, heal steps, job trials, run lists)."""

DISPLAY_ORDER = (
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
)
"""Stats tables list these first, in this order, then every other stat (``start``/``end`` aside)."""


def stat_label(key: str) -> str:
    """The human label of a stats key (``benchmark_return`` -> ``Buy & hold return``)."""
    return STAT_FORMATS[key][0] if key in STAT_FORMATS else key.replace("_", " ").capitalize()


def stat_rows(stats: Any, *, skip: tuple[str, ...] = ("start", "end")) -> list[list[str]]:
    """``[[label, text], ...]`` of a stats mapping: `DISPLAY_ORDER` first, then the rest."""
    items = {str(k): v for k, v in (stats.items() if hasattr(stats, "items") else [])}
    keys = [k for k in DISPLAY_ORDER if k in items]
    keys += [k for k in items if k not in DISPLAY_ORDER and k not in skip]
    return [[stat_label(k), stat_text(k, _plain(items[k]))] for k in keys]


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (without importing numpy)."""
    return value.item() if hasattr(value, "item") else value


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
    if isinstance(value, bool):  # a flag (e.g. liquidated) reads yes/no whatever kind it is given
        return "yes" if value else "no"
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


def param_text(value: Any) -> str:
    """A strategy parameter's value as code would write it: strings quoted, floats short (``0.25``),
    numpy scalars as plain numbers (``5``, not ``np.int64(5)``)."""
    numpy = sys.modules.get("numpy")  # a numpy scalar implies numpy is imported; never import it here
    if numpy is not None and isinstance(value, numpy.generic):
        value = value.item()
    return f"{value:g}" if isinstance(value, float) else repr(value)


def call_text(name: str, params: Mapping[str, Any]) -> str:
    """``SmaCross(fast=10, slow=50)``: a strategy's name called with its parameters (`param_text`); the
    title of a backtest's tearsheet and of its widget."""
    args = ", ".join(f"{k}={param_text(v)}" for k, v in params.items())
    return f"{name}({args})"


def warning_rows(warnings: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """A result's warnings as ``{code, message, hint}`` texts (missing ones empty): the rows of the
    tearsheet's banner and of the widget's warnings."""
    return [{k: str(w.get(k, "")) for k in ("code", "message", "hint")} for w in warnings]


SYMBOL_COLUMNS: tuple[tuple[str, str, str], ...] = (  # symbol_stats column -> (label, format kind)
    ("n_trades", "Trades", "int"),
    ("n_closed", "Closed", "int"),
    ("win_rate", "Win rate", "pct"),
    ("pnl", "P&L", "money"),
    ("fees", "Fees", "money"),
    ("contribution", "Contribution", "pct"),
    ("exposure", "Exposure", "pct"),
    ("turnover", "Turnover", "ratio"),
    ("buy_hold_return", "Buy & hold return", "pct"),
)
"""A portfolio's per-symbol table (`PortfolioResult.symbol_stats`): the report page's and the widget's."""


STAT_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Returns", ("total_return", "benchmark_return", "cagr", "final_value", "init_cash")),
    ("Risk", ("volatility", "sharpe", "sortino", "calmar", "max_drawdown", "max_drawdown_bars",
              "liquidated", "liquidation_time")),
    ("Trades", ("n_trades", "n_closed", "n_long", "n_short", "win_rate", "profit_factor",
                "avg_trade_return", "best_trade", "worst_trade", "expectancy", "exposure")),
    ("Costs", ("fees_paid", "n_orders", "rejected_orders")),
    ("Period", ("start", "end", "bars", "bars_per_year")),
)
"""Stats grouped for reports (tearsheet, widget): each group lists its keys in display order; a key in
no group (a stat added later) lands in a trailing "Other" group, so every stat still shows."""


def stat_groups(stats: Any) -> list[tuple[str, list[str]]]:
    """``[(group, [keys present, in order]), ...]`` of a stats mapping by `STAT_GROUPS`, plus "Other"."""
    keys = [str(k) for k in (stats.keys() if hasattr(stats, "keys") else [])]
    present = set(keys)
    grouped = {k for _, members in STAT_GROUPS for k in members}
    out = [(name, [k for k in members if k in present]) for name, members in STAT_GROUPS]
    out.append(("Other", [k for k in keys if k not in grouped]))
    return [(name, members) for name, members in out if members]
