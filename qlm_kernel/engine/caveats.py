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


def liquidation_warning(when: Any, price: float, settings: dict[str, Any]) -> dict[str, Any]:
    """A LIQUIDATED warning: the account hit its maintenance level at ``when`` and stopped trading."""
    leverage = settings.get("leverage", 1.0)
    maintenance = settings.get("maintenance_margin", 0.0)
    return {
        "code": "LIQUIDATED",
        "message": f"the account was liquidated at {when} (price {price:,.6g}): its net liquidation value "
                   f"reached maintenance_margin={maintenance:g} of the position's value "
                   f"(leverage={leverage:g}); nothing traded afterwards",
        "hint": "this is ruin, not a bug: the position was too large for the moves in this data. Size down "
                "(size=0.5, size_type='percent'), lower the leverage, or add a protective stop "
                "(sl_stop=0.1). Per-bar statistics (volatility, Sharpe, Sortino) end at the liquidation "
                "and, as averages of simple returns, can stay positive after a total loss: judge the run "
                "by its total return",
        "time": str(when),
        "price": price,
    }


def ruined_warning(what: str = "the best result") -> dict[str, Any]:
    """A LIQUIDATED warning for a selection (a sweep keeps no trades, so no time or price)."""
    return {
        "code": "LIQUIDATED",
        "message": f"{what} was liquidated: its account reached the maintenance level and stopped trading",
        "hint": "an objective can still rank a ruined run well (Sharpe can stay positive after a total "
                "loss): require liquidated==0 as a constraint, or size down; backtest it to see when",
    }


def debt_warning(final_value: float) -> dict[str, Any]:
    """A NEGATIVE_EQUITY warning: a gap through the liquidation level left the account owing money."""
    return {
        "code": "NEGATIVE_EQUITY",
        "message": f"the account ends at {final_value:,.2f}: the price gapped through the liquidation "
                   "level, so closing cost more than the account held (a debt a broker would claim)",
        "hint": "with leverage or shorts a gap can lose more than the account; total return below -100% "
                "and CAGR -100% state that loss, they are not a bug",
        "final_value": final_value,
    }


def result_warnings(stats: Any, *, liquidation: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The warnings of one backtest: LIQUIDATED (``liquidation``: the ``liquidation_warning`` fields),
    NEGATIVE_EQUITY, FEW_TRADES."""
    found = [
        liquidation,
        debt_warning(stats["final_value"]) if _owes(stats) else None,
        few_trades_warning(stats.get("n_trades"), what="this backtest"),
    ]
    return [w for w in found if w]


def _owes(stats: Any) -> bool:
    """Whether the account ends owing money (beyond float rounding of a liquidation at zero)."""
    return stats.get("final_value", 0.0) < -1e-9 * stats.get("init_cash", 1.0)
