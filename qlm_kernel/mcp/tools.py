"""Every MCP tool, declared once: name, arguments (types, defaults, descriptions, limits), the
description an assistant reads (the docstring), and the output schema (`qlm_kernel.mcp.schemas`).

Each tool is a plain function over `qlm_kernel.session` with the MCP front end's limits
(`qlm_kernel.session.limits.MCP`); `qlm_kernel.mcp.server` registers `TOOLS` as they are (adding only
progress reporting and, for healing, the client's model through sampling). The functions are usable
directly (tests, notebooks): they return JSON-safe dicts and raise only `QLMError`s. Strategy names go
through `strategy_file` (no paths) and data through ``dataset`` (a workspace dataset) or ``sample``
(generated) — never a file path — so a client cannot make the server read arbitrary files.
Defaults are the Python API's (`qlm.optimize`, `qlm.sanity.*`).

Tools that run strategy code are listed in `WORKER_TOOLS` with how long their worker may take and the
cheap checks (caps) made before a worker is asked: the server runs them in worker processes
(`qlm_kernel.session.workers`), so an endless loop is killed at its time limit and the kernel never runs
an assistant's code. Caps are `qlm_kernel.session.limits.MCP` (server options ``QLM_MCP_*``).

No ``from __future__ import annotations``: the SDK reads these signatures' real annotations.
"""

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from qlm_kernel import session
from qlm_kernel.errors import OptimizationError, StrategyError
from qlm_kernel.jsonsafe import json_safe
from qlm_kernel.mcp import schemas
from qlm_kernel.session.limits import MAX_LISTED, MCP
from qlm_kernel.session.spec import DataSource, RunSpec, check_mapping, check_settings
from qlm_kernel.session.strategies import strategy_file

TRADE_PREVIEW = 5
PAPER_DEFAULT_SAMPLE = {"kind": "synthetic", "n": 2_000, "seed": 0}
MAX_MCP_HEAL_ATTEMPTS = 3
DEFAULT_TIME_LIMIT = 60.0
"""Seconds a strategy's own code (loading, ``signals()``) may run in one MCP backtest by default."""
DEFAULT_JOB_TIME_LIMIT = 600.0
"""Seconds an optimization may run by default (the whole job)."""
DEFAULT_CHECK_TIME_LIMIT = 300.0
"""Seconds a sanity check may run by default (all its backtests)."""
DEFAULT_DOWNLOAD_TIME_LIMIT = 120.0
"""Seconds one download_data call may spend fetching (what it fetched is kept; a new call resumes)."""
MAX_DOWNLOAD_SYMBOLS = 20
DEFAULT_LOAD_TIME_LIMIT = 10.0
"""Seconds loading one strategy file may take when strategies are listed."""
KILL_MARGIN_S = 0.75
"""A tool that limits its strategy code itself (run_backtest, paper start) has its worker killed this long
after its limit: the worker interrupts a Python loop at the limit (reporting the line it was on) and the
kill stops what cannot be interrupted (a Numba loop), still within the limit + 1 s."""
LIST_DEADLINE_S = 120.0
HEAL_MARGIN_S = 30.0

# --- argument types: one description each, shared by every tool that takes them -------------------

StrategyName = Annotated[str, Field(description="strategy file name in the workspace, e.g. 'sma_cross.py'")]
DatasetName = Annotated[
    str | None, Field(description="a dataset imported into the workspace (list_datasets)")
]
SampleSpec = Annotated[
    dict[str, Any] | None,
    Field(
        description='generated data instead of a dataset, e.g. {"kind": "synthetic", "n": 10000, "seed": 0}; '
        f"kinds: synthetic, goog, eurusd, btcusd; n <= {MCP.max_sample_bars:,}. Default: synthetic, "
        "10,000 bars"
    ),
]
Params = Annotated[dict[str, Any] | None, Field(description='strategy parameters, e.g. {"fast": 10}')]
Settings = Annotated[
    dict[str, Any] | None,
    Field(
        description="backtest settings (fractions for costs: fees 0.001 = 10 bps): fill, fees, fixed_fees, "
        "slippage, init_cash, size, size_type, integer, direction, sl_stop, tp_stop, tsl_stop, close_at_end, "
        "leverage (buying power x cash, default 1), maintenance_margin (liquidation level, default 0)"
    ),
]
Space = Annotated[
    dict[str, list[Any]],
    Field(description=f'parameter -> list of values, e.g. {{"fast": [5, 10]}}; a grid has at most '
          f"{MCP.max_trials:,} combinations"),
]
Objective = Annotated[str, Field(description="a stats key, e.g. sharpe, total_return, calmar")]
Seed = Annotated[int, Field(description="random seed of the search or check")]
Limit = Annotated[int, Field(ge=1, le=MAX_LISTED, description="how many, newest first")]
JobId = Annotated[str, Field(description="a job id from optimize_parameters or list_jobs")]


def _time_limit_arg(default: float, what: str) -> Any:
    """A ``time_limit`` argument type: seconds ``what`` may run, > 0, at most the server's cap."""
    return Annotated[float, Field(gt=0, description=f"seconds {what} may run (at most "
                                  f"{MCP.max_time_limit:g}; default {default:g})")]


LoadTimeLimit = _time_limit_arg(DEFAULT_LOAD_TIME_LIMIT, "loading one strategy file")
BacktestTimeLimit = _time_limit_arg(DEFAULT_TIME_LIMIT, "the strategy's own code")
JobTimeLimit = _time_limit_arg(DEFAULT_JOB_TIME_LIMIT, "the whole search")
CheckTimeLimit = _time_limit_arg(DEFAULT_CHECK_TIME_LIMIT, "the whole check")
DownloadTimeLimit = _time_limit_arg(DEFAULT_DOWNLOAD_TIME_LIMIT, "the download (what it fetched is kept)")
PaperTimeLimit = _time_limit_arg(DEFAULT_TIME_LIMIT, "the strategy's signals at the start of the session")


def check_time_limit(seconds: float) -> None:
    """Refuse a time limit above the server's cap (LIMIT_EXCEEDED naming QLM_MCP_MAX_TIME_LIMIT)."""
    MCP.check("time_limit", seconds, "max_time_limit", "ask for less time")
SessionId = Annotated[str, Field(description="from start_paper_session")]


def _data(dataset: str | None, sample: dict[str, Any] | None) -> tuple[Any, str | None]:
    """(frame, dataset name): a workspace dataset or a sample spec (default: the MCP default sample)."""
    return DataSource.of(dataset=dataset, sample=sample, limits=MCP).resolve(MCP)


def trades_summary(trades: Any, preview: int = TRADE_PREVIEW) -> dict[str, Any]:
    """Counts, win rate, average return and the last few trades of a trades table."""
    n = len(trades)
    if n == 0:
        return {
            "count": 0,
            "wins": 0,
            "losses": 0,
            "long": 0,
            "short": 0,
            "avg_return": None,
            "best_return": None,
            "worst_return": None,
            "exit_reasons": {},
            "last": [],
        }
    ret = trades["return"]
    return json_safe(
        {
            "count": n,
            "wins": int((trades["pnl"] > 0).sum()),
            "losses": int((trades["pnl"] <= 0).sum()),
            "long": int((trades["direction"].astype(str) == "long").sum()),
            "short": int((trades["direction"].astype(str) == "short").sum()),
            "avg_return": float(ret.mean()),
            "best_return": float(ret.max()),
            "worst_return": float(ret.min()),
            "exit_reasons": {
                str(k): int(v) for k, v in trades["exit_reason"].astype(str).value_counts().items()
            },
            "last": trades.tail(preview).astype({"entry_time": str, "exit_time": str}).to_dict("records"),
        }
    )


# --- strategies -----------------------------------------------------------------------------------


def list_strategies(
    time_limit: LoadTimeLimit = DEFAULT_LOAD_TIME_LIMIT,
) -> schemas.StrategyList:
    """Strategies in the workspace and the bundled examples: class, parameters (defaults, ranges),
    load errors, and how many versions the store holds."""
    from qlm_kernel.strategy import time_limit_scope

    check_time_limit(time_limit)
    with time_limit_scope(time_limit):
        return {"strategies": json_safe(session.strategies.list_strategies())}


def read_strategy(name: StrategyName) -> schemas.StrategySource:
    """The full code of a strategy file (workspace first, then examples) and its latest version."""
    return json_safe(session.strategies.read_strategy(name))


def write_strategy(
    name: StrategyName,
    code: Annotated[str, Field(description="the whole file: a Strategy subclass with Params and signals()")],
    message: Annotated[str | None, Field(description="what changed, kept with the version")] = None,
) -> schemas.WriteReceipt:
    """Create or replace a strategy file in the workspace. Every write is stored as a new version
    (author "assistant"); returns the version id and a syntax check. Names only: no paths."""
    return json_safe(session.strategies.write_strategy(name, code, author="assistant", message=message))


def strategy_history(name: StrategyName) -> schemas.StrategyHistory:
    """Every stored version of a strategy's code (author, time, sha256), oldest first."""
    return {"name": name, "versions": json_safe(session.strategies.strategy_history(name))}


# --- research -------------------------------------------------------------------------------------


def run_backtest(
    strategy: StrategyName,
    dataset: DatasetName = None,
    sample: SampleSpec = None,
    params: Params = None,
    settings: Settings = None,
    report: Annotated[
        bool, Field(description="also save an HTML report (resource qlm://reports/...)")
    ] = False,
    time_limit: BacktestTimeLimit = DEFAULT_TIME_LIMIT,
) -> schemas.BacktestOutput:
    """Backtest a strategy: stats (total_return, sharpe, max_drawdown, ...), a trades summary and the
    stored run id. A broken strategy returns a StrategyError with file, line, excerpt and traceback."""
    from qlm_kernel.strategy import time_limit_scope

    check_time_limit(time_limit)
    spec = RunSpec.build(strategy_file(strategy), params=params, settings=settings, dataset=dataset,
                         sample=sample, source="mcp", limits=MCP)
    started = time.perf_counter()
    with time_limit_scope(time_limit):
        res = session.run_backtest(spec, MCP)
    seconds = time.perf_counter() - started
    frame = res.data
    out: dict[str, Any] = {
        "strategy": res.strategy_name,
        "file": spec.strategy,
        "params": json_safe(res.params),
        "settings": res.settings.to_dict(),
        "dataset": res.meta.get("dataset"),
        "sample": spec.data.sample,
        "bars": len(frame),
        "start": str(frame.index[0]),
        "end": str(frame.index[-1]),
        "seconds": seconds,
        "run_id": res.meta.get("run_id"),
        "stats": {k: json_safe(v) for k, v in res.stats.items()},
        "trades": trades_summary(res.trades),
        "warnings": json_safe(res.warnings),
    }
    if report:
        out["report"] = _save_report(res, out["run_id"])
    return json_safe(out)


def _save_report(res: Any, run_id: int | None) -> dict[str, str]:
    from qlm_kernel.home import workspace_dir

    name = f"run-{run_id}.html" if run_id is not None else f"run-{int(time.time() * 1000)}.html"
    path = workspace_dir("reports") / name
    res.save_report(str(path))
    return {"path": str(path), "uri": f"qlm://reports/{name}"}


UniverseName = Annotated[
    str, Field(description="a universe imported into the workspace (list_datasets, kind 'universe')")
]


def run_portfolio(
    strategy: StrategyName,
    universe: UniverseName,
    params: Params = None,
    settings: Settings = None,
    report: Annotated[
        bool, Field(description="also save an HTML report (resource qlm://reports/...)")
    ] = False,
    time_limit: BacktestTimeLimit = DEFAULT_TIME_LIMIT,
) -> schemas.PortfolioOutput:
    """Backtest a strategy on every symbol of a stored universe, all trading from one cash balance:
    portfolio stats, per-symbol stats (trades, win rate, pnl, contribution), a trades summary and the
    stored run id. size/size_type size each symbol's orders (e.g. size 0.2, size_type 'percent')."""
    from qlm_kernel.strategy import time_limit_scope

    check_time_limit(time_limit)
    file = strategy_file(strategy)
    params = check_mapping(params, "params")
    settings = check_settings(settings)
    started = time.perf_counter()
    # the stored universe by name only (never a file path a client could point anywhere)
    members = session.data_manager().load_universe(universe)
    with time_limit_scope(time_limit):
        res = session.backtest_portfolio(file, members, source="mcp", limits=MCP, **params, **settings)
    seconds = time.perf_counter() - started
    index = res.data.index
    out: dict[str, Any] = {
        "strategy": res.strategy_name,
        "file": file,
        "universe": res.data.name,
        "symbols": list(res.symbols),
        "params": json_safe(res.params),
        "settings": res.settings.to_dict(),
        "bars": len(index),
        "start": str(index[0]),
        "end": str(index[-1]),
        "seconds": seconds,
        "run_id": res.meta.get("run_id"),
        "stats": {k: json_safe(v) for k, v in res.stats.items()},
        "symbol_stats": res.to_dict(include_trades=False)["symbol_stats"],
        "trades": trades_summary(res.trades),
        "warnings": json_safe(res.warnings),
    }
    if report:
        out["report"] = _save_report(res, out["run_id"])
    return json_safe(out)


def optimize_parameters(
    strategy: StrategyName,
    space: Space,
    method: Annotated[
        str, Field(description="grid | random | genetic | auto (grid up to 5000 combinations, else genetic)")
    ] = "auto",
    objective: Objective = "sharpe",
    dataset: DatasetName = None,
    sample: SampleSpec = None,
    settings: Settings = None,
    n_trials: Annotated[
        int | None, Field(ge=1, description=f"random/genetic: evaluations (at most {MCP.max_trials:,})")
    ] = None,
    seed: Seed = 0,
    maximize: Annotated[bool | None, Field(description="default: the objective's natural direction")] = None,
    min_trades: Annotated[int | None, Field(ge=0, description="a trial with fewer trades is never the "
                                            "best")] = None,
    time_limit: JobTimeLimit = DEFAULT_JOB_TIME_LIMIT,
    progress: Callable[[dict[str, Any]], Any] | None = None,
) -> schemas.OptimizeOutput:
    """Search a parameter space as a recorded job, with MCP progress notifications; returns the job id,
    the best params, value and stats and the top trials. Cancelling the request cancels the job."""
    space = _check_optimize_request(space, method, n_trials, time_limit)
    res = session.optimize(
        strategy_file(strategy),
        dataset=dataset,
        sample=sample,
        space=space,
        method=method,
        objective=objective,
        maximize=maximize,
        min_trades=min_trades,
        n_trials=n_trials,
        seed=seed,
        progress=progress,
        limits=MCP,
        **check_settings(settings),
    )
    out = res.to_dict()
    trials = res.trials
    if len(trials) and res.objective in trials:
        ranked = trials[trials["status"] == "ok"].sort_values(res.objective, ascending=not res.maximize)
        out["top"] = ranked.head(5).to_dict("records")
    return json_safe(out)


def _check_space(space: Any) -> dict[str, list[Any]]:
    space = check_mapping(space, "space")
    if not space:
        raise OptimizationError(
            "space is empty",
            code="BAD_ARGUMENT",
            hint='map each parameter to a list of values, e.g. {"fast": [5, 10, 20]}',
        )
    for key, values in space.items():
        if not isinstance(values, list) or not values:
            raise OptimizationError(
                f"space[{key!r}] must be a non-empty list of values",
                code="BAD_ARGUMENT",
                hint='e.g. {"fast": [5, 10, 20]}',
                param=key,
            )
    return space


def _check_optimize_request(space: Any, method: str, n_trials: int | None,
                            time_limit: float) -> dict[str, Any]:
    """The caps of one optimization request, checked before any work: time limit, trials, grid size."""
    space = _check_space(space)
    check_time_limit(time_limit)
    MCP.check("n_trials", n_trials, "max_trials", "ask for fewer trials")
    if method == "grid":
        MCP.check("grid size", math.prod(len(v) for v in space.values()), "max_trials",
                  "use fewer values per parameter, or method='genetic'/'random' with n_trials")
    return space


def get_job(
    job_id: JobId,
    trials: Annotated[int, Field(ge=0, le=100, description="how many first/best trials to include")] = 5,
) -> schemas.JobDetail:
    """One job: status, progress, the data it ran on, heartbeat, best result and its first/best trials."""
    return session.get_job(str(job_id), trials)


def cancel_job(job_id: Annotated[str, Field(description="the job to stop")]) -> schemas.CancelReply:
    """Ask a pending or running job to stop between batches (from any process)."""
    return session.cancel_job(str(job_id))


def list_jobs(
    status: Annotated[
        str | None, Field(description="pending | running | done | failed | cancelled | abandoned")
    ] = None,
    limit: Limit = 20,
) -> schemas.JobList:
    """The newest jobs with status and progress."""
    return {"jobs": session.list_jobs(status, limit)}


def list_runs(
    limit: Limit = 20,
    strategy: Annotated[str | None, Field(description="only this strategy")] = None,
) -> schemas.RunList:
    """The newest recorded backtest runs (params, settings, stats or error)."""
    return {"runs": session.list_runs(limit, strategy)}


def reproduce_run(
    run_id: Annotated[int, Field(ge=1, description="a recorded run's id (list_runs)")],
    time_limit: BacktestTimeLimit = DEFAULT_TIME_LIMIT,
) -> schemas.Reproduction:
    """Re-run a recorded backtest (its params and settings, its recorded data source, the strategy's current
    file) and say whether it reproduces bit for bit, or exactly what changed (data, code, libraries) and
    which results moved. Nothing is recorded."""
    from qlm_kernel.strategy import time_limit_scope

    check_time_limit(time_limit)
    with time_limit_scope(time_limit):
        return session.reproduce(run_id)


def sanity_check(
    strategy: StrategyName,
    check: Annotated[
        str, Field(description="lookahead | white_noise | walk_forward | pbo | deflated_sharpe | "
                   "reality_check | report (every check that applies, one verdict: call it before "
                   "claiming an edge)")
    ] = "lookahead",
    dataset: DatasetName = None,
    sample: SampleSpec = None,
    params: Params = None,
    space: Annotated[dict[str, list[Any]] | None, Field(description="for every check but lookahead")] = None,
    n: Annotated[
        int, Field(ge=1, description="white_noise: number of permuted series (at most "
                   f"{MCP.max_noise_series})")
    ] = session.checks.DEFAULT_NOISE_SERIES,
    n_splits: Annotated[
        int, Field(ge=1, description=f"walk_forward: number of folds (at most {MCP.max_splits})")
    ] = session.checks.DEFAULT_SPLITS,
    objective: Objective = "sharpe",
    settings: Settings = None,
    seed: Seed = 0,
    time_limit: CheckTimeLimit = DEFAULT_CHECK_TIME_LIMIT,
) -> schemas.CheckReport:
    """Is this overfit or peeking ahead? Runs one check and returns its report: passed, verdict, numbers.
    A passed check is not proof of an edge (PBO below 0.5 says the selection generalises in rank)."""
    _check_check_request(check, space, n, n_splits, time_limit)
    report = session.sanity_check(check, strategy_file(strategy), dataset=dataset, sample=sample,
                                  params=params, settings=settings, space=space, n=n, n_splits=n_splits,
                                  objective=objective, seed=seed, limits=MCP)
    return json_safe(report.to_dict())


def _check_check_request(check: str, space: Any, n: int, n_splits: int, time_limit: float) -> None:
    """The caps of one sanity-check request, checked before any work."""
    check_time_limit(time_limit)
    session.checks.check_counts(check, check_mapping(space, "space"), n, n_splits, MCP)


# --- data and system ------------------------------------------------------------------------------


def list_datasets() -> schemas.DatasetList:
    """Datasets imported into the workspace (name, rows, span, fingerprint) and the built-in samples."""
    return session.list_datasets()


def download_data(
    exchange: Annotated[str, Field(pattern=r"^[a-z0-9_]{2,40}$", description="a ccxt exchange id, e.g. "
                                   "'binance', 'kraken', 'coinbase'")],
    symbols: Annotated[list[str], Field(min_length=1, max_length=MAX_DOWNLOAD_SYMBOLS,
                                        description="market symbols, e.g. ['BTC/USDT', 'ETH/USDT']")],
    timeframe: Annotated[str, Field(pattern=r"^[0-9]{1,3}[smhdwM]$", description="bar size, e.g. 1m, "
                                    "15m, 1h, 4h, 1d")] = "1h",
    since: Annotated[str | None, Field(description="first bar (ISO date, e.g. 2024-01-01); needed for a NEW "
                                       "dataset; an existing one resumes after its last bar and is filled "
                                       "in back to this date when it is earlier than its first bar")] = None,
    until: Annotated[str | None, Field(description="stop before this time (ISO); default now")] = None,
    time_limit: DownloadTimeLimit = DEFAULT_DOWNLOAD_TIME_LIMIT,
) -> schemas.DownloadReport:
    """Download OHLCV history (public market data, no keys) from a ccxt exchange into one validated
    workspace dataset per symbol, named EXCHANGE_SYMBOL_TIMEFRAME (e.g. binance_BTC-USDT_1h), usable as
    `dataset` in every other tool. Resumes after the last stored bar and never stores a bar twice; gaps
    (exchange downtime) are reported, never filled; unclosed bars are not stored. At the time limit it
    keeps what it fetched and answers complete=false: call again to continue."""
    check_time_limit(time_limit)
    return session.download(exchange, list(symbols), timeframe, since=since, until=until,
                            exchange_options=session.configured_exchange_options(), time_limit=time_limit)


def analyze_market_structure(
    dataset: DatasetName = None,
    sample: SampleSpec = None,
    window: Annotated[int, Field(ge=10, le=100_000, description="bars for the recent-trend figures")] = 250,
) -> schemas.MarketStructure:
    """Trend strength, volatility regime, Hurst exponent, autocorrelation and return distribution of a
    dataset or sample: which strategy family fits it."""
    return session.analyze_market(dataset=dataset, sample=sample, window=window, limits=MCP)


# --- self-healing ---------------------------------------------------------------------------------


_plans_lock = threading.Lock()
_plans: OrderedDict[str, str | None] = OrderedDict()
PLAN_CACHE_SIZE = 64


def reply_text(reply: Any) -> str:
    """The text of a model reply (a sampling result, a message or a string)."""
    content = getattr(reply, "content", reply)
    return str(getattr(content, "text", content))


def heal_next_prompt(strategy: str, replies: list[Any], dataset: str | None = None,
                     sample: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
                     settings: dict[str, Any] | None = None, max_attempts: int = 3,
                     time_limit: float = 10.0,
                     compute: Callable[[dict[str, Any]], str | None] | None = None) -> str | None:
    """The heal prompt the model must answer next after ``replies`` (a dry run), or None when done.

    Memoized (in this process) on the file's code, the replies and the arguments: the MCP request/retry
    exchange asks for the same plan on every round, and a plan must not change between rounds (a
    time-limit trace can name a different line of an endless loop each time it is interrupted).
    ``compute(arguments)`` makes the plan (the server: in a worker process); default `plan_heal_prompt`.
    """
    import hashlib
    import json

    from qlm_kernel.session.strategies import check_strategy_name, strategy_file_path

    texts = [reply_text(r) for r in replies]
    arguments = {"strategy": strategy, "replies": texts, "dataset": dataset, "sample": sample,
                 "params": params, "settings": settings, "max_attempts": max_attempts,
                 "time_limit": time_limit}
    path = strategy_file_path(check_strategy_name(strategy))
    code = path.read_bytes() if path.is_file() else b""
    key = hashlib.sha256(json.dumps([str(path), hashlib.sha256(code).hexdigest(), arguments],
                                    sort_keys=True, default=str).encode()).hexdigest()
    with _plans_lock:
        if key in _plans:
            _plans.move_to_end(key)
            return _plans[key]
    prompt = (compute or (lambda a: plan_heal_prompt(**a)))(arguments)
    with _plans_lock:
        _plans[key] = prompt
        while len(_plans) > PLAN_CACHE_SIZE:
            _plans.popitem(last=False)
    return prompt


def plan_heal_prompt(strategy: str, replies: list[str], dataset: str | None = None,
                     sample: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
                     settings: dict[str, Any] | None = None, max_attempts: int = 3,
                     time_limit: float = 10.0) -> str | None:
    """One heal plan, uncached: a dry run of the heal loop on a scratch copy with ``replies``."""
    from qlm_kernel.session import heal_next_prompt as next_prompt

    kwargs = {**check_settings(settings), **check_mapping(params, "params")}
    frame, dataset_name = _data(dataset, sample)
    return next_prompt(strategy, frame, list(replies), dataset=dataset_name, max_attempts=max_attempts,
                       time_limit=time_limit, workspace_only=True, **kwargs)


def heal_deadline(max_attempts: int, time_limit: float) -> float:
    """Seconds a whole heal (or one plan) may take in its worker: every attempt's run and re-run at
    ``time_limit`` each, plus loading, validation and recording."""
    return (int(max_attempts) + 1) * (float(time_limit) + 2.0) + HEAL_MARGIN_S


class ReplayModel:
    """A heal model that hands out replies collected beforehand (MCP sampling), in order."""

    def __init__(self, replies: list[Any]) -> None:
        self._replies = list(replies)

    def __call__(self, prompt: str) -> Any:
        if not self._replies:
            raise StrategyError("the heal needed another model reply than the planned ones", code="NO_REPLY",
                                hint="run heal_strategy again; the strategy or data changed during the heal")
        return self._replies.pop(0)


def heal_strategy(
    strategy: StrategyName,
    dataset: DatasetName = None,
    sample: SampleSpec = None,
    params: Params = None,
    settings: Settings = None,
    max_attempts: Annotated[
        int, Field(ge=1, le=MAX_MCP_HEAL_ATTEMPTS, description="model replies to try (1-3)")
    ] = MAX_MCP_HEAL_ATTEMPTS,
    time_limit: Annotated[
        float, Field(gt=0, description="seconds the strategy may run per attempt (at most "
                     f"{MCP.max_time_limit:g})")
    ] = 10.0,
    replies: list[Any] | None = None,
) -> schemas.HealOutput:
    """Repair a failing strategy with YOUR model (MCP sampling: you are asked for each fix): run it,
    send the error trace and source, validate the patched file, save it as a new version (author
    "healer"), re-run; roll back if not healed. Without sampling support: a diagnosis only. Returns
    the heal report (steps, diffs, outcome); every step is also on the bus and in the store."""
    from qlm_kernel.session.strategies import check_strategy_name

    check_strategy_name(strategy)  # names only over MCP: no paths
    check_time_limit(time_limit)
    kwargs = {**check_settings(settings), **check_mapping(params, "params")}
    frame, dataset_name = _data(dataset, sample)
    model = None if replies is None else ReplayModel(replies)
    report = session.heal(strategy, frame, dataset=dataset_name, model=model, max_attempts=max_attempts,
                          time_limit=time_limit, model_name="mcp-sampling" if model else None, source="mcp",
                          workspace_only=True, **kwargs)
    return json_safe({**report.to_dict(), "sampled_replies": 0 if replies is None else len(replies)})


# --- paper trading --------------------------------------------------------------------------------


def start_paper_session(
    strategy: StrategyName,
    dataset: DatasetName = None,
    sample: SampleSpec = None,
    params: Params = None,
    settings: Annotated[
        dict[str, Any] | None,
        Field(description="backtest settings plus latency (s), slippage, fees, fixed_fees, "
              "max_participation"),
    ] = None,
    speed: Annotated[float, Field(ge=0, description="bars per second (0 = as fast as possible)")] = 20.0,
    risk: Annotated[
        dict[str, Any] | None,
        Field(description="risk limits: max_position, max_daily_loss, max_orders_per_minute"),
    ] = None,
    time_limit: PaperTimeLimit = DEFAULT_TIME_LIMIT,
) -> schemas.PaperStarted:
    """Paper-trade a strategy on replayed bars (simulated broker with latency and slippage) in the
    background, in its own worker process; returns the session id once the first bar is done. Orders,
    fills and P&L go to the store and the bus. A strategy that takes longer than ``time_limit`` on one
    bar is stopped (TIMEOUT)."""
    check_paper_request(time_limit)
    file = strategy_file(strategy)
    if dataset is None and sample is None:
        sample = dict(PAPER_DEFAULT_SAMPLE)
    source = DataSource.of(dataset=dataset, sample=sample, limits=MCP)
    return json_safe(session.start_isolated_paper_session(
        str(file), dataset=source.dataset, sample=source.sample, params=check_mapping(params, "params"),
        settings=check_mapping(settings, "settings"), speed=speed, risk=check_mapping(risk, "risk") or None,
        time_limit=time_limit, max_sessions=MCP.max_paper_sessions))


def check_paper_request(time_limit: float) -> None:
    """The caps of a paper-session request: time limit, paper sessions running in this process."""
    check_time_limit(time_limit)
    running = session.running_paper_sessions()
    MCP.check("paper sessions running", running + 1, "max_paper_sessions",
              "stop one (stop_paper_session) before starting another")


def paper_session_status(session_id: SessionId) -> schemas.PaperStatus:
    """A paper session's status, bars processed, position, cash, equity, P&L, orders and fills."""
    return json_safe(session.paper_session_status(str(session_id)))


def stop_paper_session(session_id: SessionId) -> schemas.PaperStatus:
    """Stop a paper session after its current bar; returns its final status."""
    return json_safe(session.stop_paper_session(str(session_id)))


def list_paper_sessions(limit: Limit = 20) -> schemas.PaperList:
    """Paper sessions, newest first."""
    return {"sessions": json_safe(session.list_paper_sessions(limit=limit))}


@dataclass(frozen=True)
class WorkerTool:
    """How a tool that runs strategy code runs in a worker: the seconds its worker may take (from the
    tool's arguments, defaults applied) and the cheap checks made before a worker is asked."""

    deadline: Callable[[dict[str, Any]], float]
    precheck: Callable[[dict[str, Any]], Any] | None = None


WORKER_TOOLS: dict[str, WorkerTool] = {
    "list_strategies": WorkerTool(lambda a: LIST_DEADLINE_S, lambda a: check_time_limit(a["time_limit"])),
    "run_backtest": WorkerTool(lambda a: a["time_limit"] + KILL_MARGIN_S,
                               lambda a: check_time_limit(a["time_limit"])),
    "run_portfolio": WorkerTool(lambda a: a["time_limit"] + KILL_MARGIN_S,
                                lambda a: check_time_limit(a["time_limit"])),
    "reproduce_run": WorkerTool(lambda a: a["time_limit"] + KILL_MARGIN_S,
                                lambda a: check_time_limit(a["time_limit"])),
    "optimize_parameters": WorkerTool(
        lambda a: a["time_limit"],
        lambda a: _check_optimize_request(a["space"], a["method"], a["n_trials"], a["time_limit"])),
    "sanity_check": WorkerTool(
        lambda a: a["time_limit"],
        lambda a: _check_check_request(a["check"], a["space"], a["n"], a["n_splits"], a["time_limit"])),
    "heal_strategy": WorkerTool(lambda a: heal_deadline(a["max_attempts"], a["time_limit"]),
                                lambda a: check_time_limit(a["time_limit"])),
    "plan_heal_prompt": WorkerTool(lambda a: heal_deadline(a["max_attempts"], a["time_limit"])),
}
"""Tools (and the heal planner) the server runs in worker processes. start_paper_session is not here:
it returns at once and its session runs in a worker of its own (`session.start_isolated_paper_session`)."""


READ_ONLY_TOOLS: tuple[Callable[..., Any], ...] = (
    list_strategies, read_strategy, strategy_history, list_datasets, list_runs, list_jobs, get_job,
    analyze_market_structure, sanity_check, list_paper_sessions, paper_session_status, reproduce_run,
)
"""Tools that change nothing the user has (sanity_check records its optimization job, nothing else)."""

WRITING_TOOLS: tuple[Callable[..., Any], ...] = (
    write_strategy, run_backtest, run_portfolio, optimize_parameters, cancel_job, heal_strategy,
    start_paper_session, stop_paper_session, download_data,
)
"""Tools that write: strategy versions, recorded runs and jobs, cancel flags, paper sessions, datasets."""

OPEN_WORLD_TOOLS: tuple[Callable[..., Any], ...] = (download_data,)
"""Writing tools that also reach outside this machine (the exchange's public API): annotated as such."""
