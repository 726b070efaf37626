"""Execution: the `ExecutionHandler` interface, the paper broker, the bar-by-bar runner, the CCXT adapter.

>>> import qlm_kernel as qlm
>>> res = qlm.paper_replay("sma_cross", qlm.sample_data("synthetic", n=2000), latency=0.1, slippage=0.0005)
>>> res.trades; res.divergence(qlm.backtest("sma_cross", df, fill="next_open"))

`paper_trade` runs a strategy on a feed (a replayed frame or a live feed), persisting orders, fills
and state in the store so a killed session resumes without duplicate orders. The CCXT adapter
(`qlm_kernel.execution.ccxt_handler`) imports ccxt only when used. `paper_replay_portfolio` (or
`paper_replay` given a universe) trades one strategy on several symbols from one account
(`PortfolioRunner`) and compares with `qlm.backtest_portfolio`.
"""

from __future__ import annotations

from qlm_kernel.execution.base import ExecutionHandler
from qlm_kernel.execution.clock import SimulatedClock, WallClock
from qlm_kernel.execution.feeds import Bar, DataFrameFeed
from qlm_kernel.execution.paper import PaperExecutionHandler
from qlm_kernel.execution.portfolio_replay import (
    PaperPortfolioResult,
    PortfolioDivergenceReport,
    paper_replay_portfolio,
)
from qlm_kernel.execution.portfolio_runner import PortfolioRunner
from qlm_kernel.execution.replay import paper_replay
from qlm_kernel.execution.result import DivergenceReport, PaperResult
from qlm_kernel.execution.risk import RiskLimits
from qlm_kernel.execution.runner import PaperRunner
from qlm_kernel.execution.trading import paper_trade
from qlm_kernel.execution.types import Fill, Order, Position, new_client_order_id

__all__ = [
    "Bar",
    "DataFrameFeed",
    "DivergenceReport",
    "ExecutionHandler",
    "Fill",
    "Order",
    "PaperExecutionHandler",
    "PaperPortfolioResult",
    "PaperResult",
    "PaperRunner",
    "PortfolioDivergenceReport",
    "PortfolioRunner",
    "Position",
    "RiskLimits",
    "SimulatedClock",
    "WallClock",
    "new_client_order_id",
    "paper_replay",
    "paper_replay_portfolio",
    "paper_trade",
]
