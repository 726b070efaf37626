"""What each MCP tool does, as plain functions over the session API (no MCP imports here).

`qlm_kernel.mcp.server` registers these as tools; they are also usable directly (tests, notebooks).
Each returns a JSON-safe dict and raises only `QLMError`s. Everything goes through
`qlm_kernel.session` with the MCP front end's limits (`qlm_kernel.session.limits.MCP`: sample size,
grid size, series, splits; internal knobs are not settable). Strategy names go through
`strategy_file` (no paths), data through ``dataset=`` (a workspace dataset) or ``sample=``
(generated) — never a file path — so a client cannot make the server read arbitrary files.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from qlm_kernel import session
from qlm_kernel.errors import OptimizationError, StrategyError
from qlm_kernel.jsonsafe import json_safe
from qlm_kernel.session.limits import MCP
from qlm_kernel.session.spec import DataSource, RunSpec, check_mapping, check_settings
from qlm_kernel.session.strategies import strategy_file

SANITY_CHECKS = session.CHECKS
TRADE_PREVIEW = 5
PAPER_DEFAULT_SAMPLE = {"kind": "synthetic", "n": 2_000, "seed": 0}


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


def list_strategies() -> dict[str, Any]:
    """Strategies in the workspace and the bundled examples, with parameters and stored versions."""
    from qlm_kernel.session.strategies import list_strategies as listing

    return {"strategies": json_safe(listing())}


def read_strategy(name: str) -> dict[str, Any]:
    """The code of one strategy file (workspace first, then examples) with its latest version."""
    from qlm_kernel.session.strategies import read_strategy as read

    return json_safe(read(name))


def write_strategy(
    name: str, code: str, message: str | None = None, author: str = "assistant"
) -> dict[str, Any]:
    """Save a strategy file in the workspace as a new version; returns the version id and a syntax check."""
    from qlm_kernel.session.strategies import write_strategy as write

    return json_safe(write(name, code, author=author, message=message))


def strategy_history(name: str) -> dict[str, Any]:
    """Every stored version of a strategy (author, time, sha256), oldest first."""
    from qlm_kernel.session.strategies import strategy_history as history

    return {"name": name, "versions": json_safe(history(name))}


# --- research -------------------------------------------------------------------------------------


DEFAULT_TIME_LIMIT = 60.0
"""Seconds a strategy's own code (loading, ``signals()``) may run in one MCP backtest: an assistant's
endless loop becomes a TIMEOUT StrategyError instead of a worker thread lost for good."""


def run_backtest(
    strategy: str,
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    report: bool = False,
    source: str = "mcp",
    time_limit: float | None = DEFAULT_TIME_LIMIT,
) -> dict[str, Any]:
    """Backtest a strategy file; stats, a trades summary and the stored run id (StrategyError on failure)."""
    from qlm_kernel.strategy import time_limit_scope

    spec = RunSpec.build(strategy_file(strategy), params=params, settings=settings, dataset=dataset,
                         sample=sample, source=source, limits=MCP)
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


def optimize_parameters(
    strategy: str,
    space: dict[str, list[Any]],
    method: str = "auto",
    objective: str = "sharpe",
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    n_trials: int | None = None,
    seed: int = 0,
    maximize: bool | None = None,
    progress: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """Run a recorded optimization job to the end; job id, best params/value/stats and the top trials."""
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
    res = session.optimize(
        strategy_file(strategy),
        dataset=dataset,
        sample=sample,
        space=space,
        method=method,
        objective=objective,
        maximize=maximize,
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


def get_job(job_id: str, trials: int = 5) -> dict[str, Any]:
    """One job (`qlm_kernel.session.job_view`) with its first/best trials."""
    return session.get_job(str(job_id), trials)


def cancel_job(job_id: str) -> dict[str, Any]:
    """Ask a pending or running job to stop between batches: ``{"job_id", "status", "cancel_requested"}``."""
    return session.cancel_job(str(job_id))


def list_jobs(status: str | None = None, limit: int = 20) -> dict[str, Any]:
    """The newest jobs with their status and progress."""
    return {"jobs": session.list_jobs(status, limit)}


def list_runs(limit: int = 20, strategy: str | None = None) -> dict[str, Any]:
    """The newest recorded backtest runs (stats or error)."""
    return {"runs": session.list_runs(limit, strategy)}


def sanity_check(
    strategy: str,
    check: str = "lookahead",
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    space: dict[str, list[Any]] | None = None,
    n: int = session.checks.DEFAULT_NOISE_SERIES,
    n_splits: int = session.checks.DEFAULT_SPLITS,
    objective: str = "sharpe",
    settings: dict[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """One overfitting/lookahead check (`qlm_kernel.session.sanity_check`); its report."""
    report = session.sanity_check(check, strategy_file(strategy), dataset=dataset, sample=sample,
                                  params=params, settings=settings, space=space, n=n, n_splits=n_splits,
                                  objective=objective, seed=seed, limits=MCP)
    return json_safe(report.to_dict())


# --- data and system ------------------------------------------------------------------------------


def list_datasets() -> dict[str, Any]:
    """Datasets imported into the workspace, plus the built-in samples usable as ``sample``."""
    return session.list_datasets()


def analyze_market_structure(
    dataset: str | None = None, sample: dict[str, Any] | None = None, window: int = 250
) -> dict[str, Any]:
    """Trend strength, volatility regime, Hurst exponent, autocorrelation and return distribution."""
    from qlm_kernel.analysis import analyze_market_structure as analyze

    frame, dataset_name = _data(dataset, sample)
    return {"dataset": dataset_name, "sample": sample, **analyze(frame, window=int(window))}


# --- self-healing ---------------------------------------------------------------------------------


_plans_lock = threading.Lock()
_plans: OrderedDict[str, str | None] = OrderedDict()
PLAN_CACHE_SIZE = 64


def _reply_text(reply: Any) -> str:
    content = getattr(reply, "content", reply)
    return str(getattr(content, "text", content))


def heal_next_prompt(strategy: str, replies: list[Any], dataset: str | None = None,
                     sample: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
                     settings: dict[str, Any] | None = None, max_attempts: int = 3,
                     time_limit: float = 10.0) -> str | None:
    """The heal prompt the model must answer next after ``replies`` (a dry run), or None when done.

    Memoized on the file's code, the replies and the arguments: the MCP request/retry exchange asks
    for the same plan on every round, and a plan must not change between rounds (a time-limit trace
    can name a different line of an endless loop each time it is interrupted).
    """
    import hashlib
    import json

    from qlm_kernel.healing.preview import next_prompt
    from qlm_kernel.session.strategies import check_strategy_name, strategy_file_path

    kwargs = {**check_settings(settings), **check_mapping(params, "params")}
    path = strategy_file_path(check_strategy_name(strategy))
    code = path.read_bytes() if path.is_file() else b""
    key = hashlib.sha256(json.dumps(
        [str(path), hashlib.sha256(code).hexdigest(), [_reply_text(r) for r in replies], dataset, sample,
         kwargs, max_attempts, time_limit], sort_keys=True, default=str).encode()).hexdigest()
    with _plans_lock:
        if key in _plans:
            _plans.move_to_end(key)
            return _plans[key]
    frame, dataset_name = _data(dataset, sample)
    prompt = next_prompt(strategy, frame, list(replies), dataset=dataset_name, max_attempts=max_attempts,
                         time_limit=time_limit, workspace_only=True, **kwargs)
    with _plans_lock:
        _plans[key] = prompt
        while len(_plans) > PLAN_CACHE_SIZE:
            _plans.popitem(last=False)
    return prompt


class ReplayModel:
    """A heal model that hands out replies collected beforehand (MCP sampling), in order."""

    def __init__(self, replies: list[Any]) -> None:
        self._replies = list(replies)

    def __call__(self, prompt: str) -> Any:
        if not self._replies:
            raise StrategyError("the heal needed another model reply than the planned ones", code="NO_REPLY",
                                hint="run heal_strategy again; the strategy or data changed during the heal")
        return self._replies.pop(0)


def heal_strategy(strategy: str, replies: list[Any] | None, dataset: str | None = None,
                  sample: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
                  settings: dict[str, Any] | None = None, max_attempts: int = 3,
                  time_limit: float = 10.0) -> dict[str, Any]:
    """Heal a workspace strategy with sampled ``replies`` (None: no model, diagnosis only); the report."""
    from qlm_kernel.session.strategies import check_strategy_name

    check_strategy_name(strategy)  # names only over MCP: no paths
    kwargs = {**check_settings(settings), **check_mapping(params, "params")}
    frame, dataset_name = _data(dataset, sample)
    model = None if replies is None else ReplayModel(replies)
    report = session.heal(strategy, frame, dataset=dataset_name, model=model, max_attempts=max_attempts,
                  time_limit=time_limit, model_name="mcp-sampling" if model else None, source="mcp",
                  workspace_only=True, **kwargs)
    return json_safe({**report.to_dict(), "sampled_replies": 0 if replies is None else len(replies)})


# --- paper trading --------------------------------------------------------------------------------


def start_paper_session(strategy: str, dataset: str | None = None, sample: dict[str, Any] | None = None,
                        params: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
                        speed: float = 20.0, risk: dict[str, Any] | None = None) -> dict[str, Any]:
    """Paper-trade a strategy on replayed bars in a background thread; returns the session id."""
    file = strategy_file(strategy)
    if dataset is None and sample is None:
        sample = PAPER_DEFAULT_SAMPLE
    frame, _ = _data(dataset, sample)
    return json_safe(session.start_paper_session(file, data=frame, params=check_mapping(params, "params"),
                                                 settings=check_mapping(settings, "settings"), speed=speed,
                                                 risk=check_mapping(risk, "risk") or None))


def paper_session_status(session_id: str) -> dict[str, Any]:
    """Status, bars processed, position, cash, equity, P&L, orders and fills of a paper session."""
    return json_safe(session.paper_session_status(str(session_id)))


def stop_paper_session(session_id: str) -> dict[str, Any]:
    """Stop a paper session after its current bar; its final status."""
    return json_safe(session.stop_paper_session(str(session_id)))


def list_paper_sessions(limit: int = 20) -> dict[str, Any]:
    """Paper sessions, newest first."""
    return {"sessions": json_safe(session.list_paper_sessions(limit=max(1, min(int(limit), 500))))}
