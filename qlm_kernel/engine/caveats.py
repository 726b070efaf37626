"""What to be wary of in a result: the warning records every front end shows next to its numbers.

A warning is a JSON-safe dict with a stable ``code``, a one-line ``message`` and a ``hint`` saying why
it matters and what to do; the report, the CLI, the MCP tools and the optimizer all show the same ones.
"""

from __future__ import annotations

from typing import Any

MIN_TRADES = 30
"""Fewer trades than this under a result earn a FEW_TRADES warning: with n trades a Sharpe ratio's
standard error is roughly 1/sqrt(n) per trade, so a statistic resting on a handful of trades is mostly
luck, the more so when it is the best of many variants (see the deflated Sharpe check)."""


def few_trades_warning(n_trades: Any, min_trades: int = MIN_TRADES, what: str = "the best result") -> (
        dict[str, Any] | None):
    """A FEW_TRADES warning record when ``n_trades`` is below ``min_trades`` (None otherwise)."""
    if n_trades is None or not isinstance(n_trades, (int, float)) or n_trades >= min_trades:
        return None
    n = int(n_trades)
    return {
        "code": "FEW_TRADES",
        "message": f"{what} rests on {n} trade{'s' if n != 1 else ''} (fewer than {min_trades})",
        "hint": "a statistic over so few trades is mostly luck, more so when it is the best of many "
                "variants: widen the data, loosen the entry rule, or require trades with a constraint "
                "such as 'n_trades>=30'; run the deflated_sharpe and white_noise checks",
        "n_trades": n,
        "min_trades": min_trades,
    }


def result_warnings(stats: Any) -> list[dict[str, Any]]:
    """The warnings of one backtest's stats mapping (FEW_TRADES; LIQUIDATED once margin lands)."""
    found = [few_trades_warning(stats.get("n_trades"), what="this backtest")]
    return [w for w in found if w]
