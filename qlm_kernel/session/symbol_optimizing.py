"""Per-symbol parameters for a portfolio: each symbol of a universe optimized on its own bars, then
traded together with each symbol's best parameters (`PerSymbolOptimization.backtest`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from qlm_kernel.optimization.result import OptimizationResult


class PerSymbolOptimization:
    """One `OptimizationResult` per symbol (the strategy optimized on that symbol alone, as a single
    asset with all the cash), and the portfolio of each symbol's best parameters."""

    def __init__(self, strategy: Any, universe: Any, results: dict[str, OptimizationResult]) -> None:
        self.strategy = strategy
        self.universe = universe
        self.results = results

    @property
    def best_params(self) -> dict[str, dict[str, Any] | None]:
        """Symbol -> its best parameters (None when no trial of that symbol was feasible)."""
        return {sym: res.best_params for sym, res in self.results.items()}

    def table(self) -> pd.DataFrame:
        """One row per symbol: its best parameters, objective value, trials and job id."""
        rows = []
        for sym, res in self.results.items():
            rows.append({"symbol": sym, **(res.best_params or {}), res.objective: res.best_value,
                         "trials": len(res.rows), "job_id": res.job_id})
        return pd.DataFrame(rows).set_index("symbol")

    def strategies(self) -> dict[str, Any]:
        """Symbol -> the strategy with that symbol's best parameters (symbols without any are left out):
        what `qlm.backtest_portfolio` takes to trade them together."""
        from qlm_kernel.strategy import resolve_strategy

        return {sym: resolve_strategy(self.strategy, **params) for sym, params in self.best_params.items()
                if params is not None}

    def backtest(self, **settings: Any) -> Any:
        """The portfolio of every symbol with its own best parameters (shared cash), recorded."""
        from qlm_kernel.session.portfolios import backtest_portfolio

        chosen = self.strategies()
        return backtest_portfolio(chosen, self.universe, **settings)

    def _repr_html_(self) -> str:
        return f"<b>Per-symbol optimization</b> ({len(self.results)} symbols){self.table().to_html()}"

    def __repr__(self) -> str:
        shown = ", ".join(f"{s}: {p}" for s, p in list(self.best_params.items())[:4])
        more = " ..." if len(self.results) > 4 else ""
        return f"<PerSymbolOptimization {len(self.results)} symbols: {shown}{more}>"


def optimize_per_symbol(strategy: Any, universe: Any, space: Any, search: Callable[..., OptimizationResult],
                        **options: Any) -> PerSymbolOptimization:
    """Run ``search`` (the single-asset optimizer) once per symbol of ``universe`` on that symbol's own
    frame, with the same space, method, objective, settings and seed."""
    results: dict[str, OptimizationResult] = {}
    for sym in universe.symbols:
        results[sym] = search(strategy, universe.frame(sym), space, **options)
    return PerSymbolOptimization(strategy, universe, results)

