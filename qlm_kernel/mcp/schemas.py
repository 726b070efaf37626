"""What each MCP tool returns, as typed output schemas (published with the tool; clients can validate).

Each model names and describes the fields an assistant relies on; ``extra="allow"`` keeps everything
else the session returns (a new stat or field never breaks a client, and nothing is dropped). The
shapes are the session API's: a job is `qlm_kernel.session.job_view`, a cancel reply is
`qlm_kernel.session.cancel_job`'s, a check is a `SanityReport.to_dict()`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Output(BaseModel):
    """Base of every tool result: declared fields plus whatever else the session returned."""

    model_config = ConfigDict(extra="allow")


class StrategyList(Output):
    strategies: list[dict[str, Any]] = Field(
        description="name, file, class, params (defaults, ranges), versions"
    )


class StrategySource(Output):
    name: str = Field(description="the file name, e.g. 'sma_cross.py'")
    code: str = Field(description="the whole file")
    strategy: str | None = Field(None, description="the file's stem: the name runs are filed under")


class WriteReceipt(Output):
    name: str
    version: int | None = Field(None, description="the stored version number of this write")


class StrategyHistory(Output):
    name: str
    versions: list[dict[str, Any]] = Field(
        description="every stored version (author, time, sha256), oldest first"
    )


class TradesSummary(Output):
    count: int
    wins: int
    losses: int
    last: list[dict[str, Any]] = Field(description="the last few trades")


class BacktestOutput(Output):
    strategy: str
    params: dict[str, Any]
    settings: dict[str, Any] = Field(description="every backtest setting, defaults filled in")
    dataset: str | None = None
    sample: dict[str, Any] | None = None
    bars: int
    run_id: int | None = Field(None, description="the recorded run (qlm://runs/{run_id})")
    stats: dict[str, Any] = Field(
        description="final_value, total_return (fraction), sharpe, max_drawdown, ..."
    )
    trades: TradesSummary
    warnings: list[dict[str, Any]] = Field(
        default_factory=list,
        description="what to be wary of: LIQUIDATED, NEGATIVE_EQUITY, FEW_TRADES (code, message, hint)",
    )


class PortfolioOutput(Output):
    strategy: str
    universe: str = Field(description="the stored universe's name")
    symbols: list[str]
    params: dict[str, Any]
    settings: dict[str, Any] = Field(description="every backtest setting, defaults filled in")
    bars: int = Field(description="bars of the union of the symbols' timestamps")
    start: str
    end: str
    seconds: float
    run_id: int | None = Field(None, description="the recorded run (qlm://runs/{run_id})")
    stats: dict[str, Any] = Field(
        description="the portfolio's final_value, total_return (fraction), sharpe, max_drawdown, ..."
    )
    symbol_stats: dict[str, dict[str, Any]] = Field(
        description="per symbol: n_trades, win_rate, pnl, fees, contribution (pnl / initial cash), "
        "exposure, turnover, buy_hold_return"
    )
    trades: TradesSummary
    warnings: list[dict[str, Any]] = Field(
        default_factory=list,
        description="what to be wary of: LIQUIDATED, NEGATIVE_EQUITY, FEW_TRADES (code, message, hint)",
    )
    report: dict[str, str] | None = Field(None, description="{path, uri} when report=true")


class OptimizeOutput(Output):
    job_id: str | None = Field(None, description="the recorded job (get_job)")
    status: str = Field(description="done | cancelled")
    method: str
    objective: str
    maximize: bool
    n_trials: int
    best_params: dict[str, Any] | None = None
    best_value: float | None = None
    best_stats: dict[str, Any] | None = None
    top: list[dict[str, Any]] | None = Field(None, description="the five best trials")


class JobView(Output):
    id: str
    kind: str | None = None
    status: str = Field(description="pending | running | done | failed | cancelled | abandoned")
    done: int
    total: int | None = None
    progress: float = Field(description="fraction done, 0..1")
    strategy: str | None = None
    best: dict[str, Any] | None = Field(None, description="{params, value}")
    cancel_requested: bool
    stale: bool = Field(description="running but silent for over a minute (its worker likely died)")


class JobDetail(JobView):
    trials: dict[str, Any] = Field(description="{count, order, first: [...], best: [...]}")


class JobList(Output):
    jobs: list[JobView]


class CancelReply(Output):
    job_id: str
    status: str
    cancel_requested: bool


class RunList(Output):
    runs: list[dict[str, Any]] = Field(description="params, settings, stats or error, strategy_version")


class Reproduction(Output):
    run_id: int = Field(description="the run re-run")
    equal: bool = Field(description="True when every stat (and, when recorded, the equity and trade hashes) "
                        "is the same")
    changed: list[str] = Field(description="inputs that changed: data, code, libraries")
    differences: list[dict[str, Any]] = Field(description="each changed input: what, item, stored, now")
    results: dict[str, Any] = Field(description="result hashes and stats that differ: stored and now")
    verdict: str = Field(description="one sentence")


class CheckReport(Output):
    name: str = Field(description="the check")
    passed: bool = Field(description="True when the check found nothing wrong (not proof of an edge)")
    verdict: str = Field(description="one or two plain sentences")
    numbers: dict[str, Any]
    details: dict[str, Any]


class DatasetList(Output):
    datasets: list[dict[str, Any]] = Field(description="name, rows, start, end, fingerprint")
    samples: dict[str, Any] = Field(description="built-in sample kinds, fields and an example spec")


class DownloadReport(Output):
    exchange: str
    timeframe: str
    datasets: list[dict[str, Any]] = Field(
        description="per symbol: name (the dataset to backtest on), rows, rows_added, backfilled (bars "
        "added before the first stored one), backfill_pending_until (a fill-in the next call finishes), "
        "start, end, resumed_from, duplicates_dropped, gaps (reported, never filled), complete"
    )
    complete: bool = Field(description="False when the time limit stopped it: call again to resume")
    not_started: list[str] | None = Field(None, description="symbols the time limit left for the next call")


class MarketStructure(Output):
    dataset: str | None = None
    sample: dict[str, Any] | None = None


class SystemStatus(Output):
    memory: dict[str, Any]
    cpu: dict[str, Any]
    numba: dict[str, Any]
    database: dict[str, Any]
    running_jobs: list[dict[str, Any]]
    mcp: dict[str, Any]


class HealOutput(Output):
    strategy: str
    status: str = Field(description="passed | healed | not_healed | diagnosed | error")
    healed: bool
    attempts: int
    steps: list[dict[str, Any]]
    diagnosis: dict[str, Any] | None = None
    sampled_replies: int = Field(description="model replies obtained through MCP sampling")


class PaperStarted(Output):
    session_id: str
    strategy: str
    bars: int


class PaperStatus(Output):
    session_id: str | None = None
    status: str | None = None


class PaperList(Output):
    sessions: list[dict[str, Any]]
