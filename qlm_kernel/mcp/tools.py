"""What each MCP tool does, as plain functions over the session API (no MCP imports here).

`qlm_kernel.mcp.server` registers these as tools; they are also usable directly (tests, notebooks).
Each returns a JSON-safe dict and raises only `QLMError`s. Strategy names go through
`check_strategy_name` (no paths), data through ``dataset=`` (a workspace dataset) or ``sample=``
(generated) — never a file path — so a client cannot make the server read arbitrary files.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from qlm_kernel.errors import ConfigError, DataError, OptimizationError, StrategyError
from qlm_kernel.jsonsafe import json_safe

SANITY_CHECKS = ("lookahead", "white_noise", "walk_forward", "pbo", "deflated_sharpe")
MAX_SAMPLE_BARS = 5_000_000
TRADE_PREVIEW = 5


def _strategy_file(name: Any) -> str:
    """The file of a strategy name (workspace first, then the bundled examples); names only, no paths."""
    from qlm_kernel.session.strategies import check_strategy_name
    from qlm_kernel.strategy.loader import find_strategy_file

    return str(find_strategy_file(check_strategy_name(name)[:-3]))


_frames_lock = threading.Lock()
_frames: OrderedDict[tuple[str, str, int, int], Any] = OrderedDict()
FRAME_CACHE_SIZE = 2


def _dataset_frame(name: str) -> Any:
    """A workspace dataset, kept loaded between calls (up to FRAME_CACHE_SIZE, keyed by the file's
    mtime and size so a re-import is seen). Each call gets its own copy-on-write view: a strategy that
    edits its data in place cannot change what the next call sees."""
    from qlm_kernel.session import resolve_data
    from qlm_kernel.session.data import data_manager
    from qlm_kernel.session.fingerprints import seed_fingerprint

    path = data_manager().path(name)
    stat = path.stat() if path.exists() else None
    key = (str(path.parent), name, stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)
    with _frames_lock:
        frame = _frames.get(key)
        if frame is not None:
            _frames.move_to_end(key)
    if frame is None:
        frame, _ = resolve_data(None, dataset=name)
        with _frames_lock:
            _frames[key] = frame
            while len(_frames) > FRAME_CACHE_SIZE:
                _frames.popitem(last=False)
    view = frame.copy(deep=False)
    if frame.attrs.get("fingerprint"):
        seed_fingerprint(view, frame.attrs["fingerprint"])
    return view


def _data(dataset: str | None, sample: dict[str, Any] | None) -> tuple[Any, str | None]:
    """(frame, dataset name) from a workspace dataset or a sample spec (default: synthetic 10,000)."""
    from qlm_kernel.session import resolve_data

    if dataset is not None and sample is None:
        return _dataset_frame(dataset), dataset

    if dataset is None and sample is None:
        sample = {"kind": "synthetic", "n": 10_000, "seed": 0}
    if sample is not None:
        if not isinstance(sample, dict):
            raise DataError(
                'sample must be an object like {"kind": "synthetic", "n": 10000, "seed": 0}',
                code="DATA_BAD_INPUT",
                hint="kinds: synthetic, goog, eurusd, btcusd",
            )
        unknown = sorted(set(sample) - {"kind", "n", "seed", "start", "freq"})
        if unknown:
            raise DataError(
                f"unknown sample field(s) {unknown}",
                code="DATA_BAD_INPUT",
                hint="sample fields: kind, n, seed, start, freq",
            )
        n = sample.get("n")
        if n is not None and (not isinstance(n, int) or n > MAX_SAMPLE_BARS or n < 2):
            raise DataError(
                f"sample n must be an integer between 2 and {MAX_SAMPLE_BARS:,}",
                code="DATA_BAD_INPUT",
                hint="use a smaller sample",
                value=n,
            )
    return resolve_data(None, dataset=dataset, sample=sample)


def _check_mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be an object mapping names to values", hint=f"e.g. {what}={{}}")
    return dict(value)


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
    from qlm_kernel.engine.settings import SETTING_NAMES
    from qlm_kernel.session import backtest
    from qlm_kernel.strategy import time_limit_scope

    params, settings = _check_mapping(params, "params"), _check_mapping(settings, "settings")
    unknown = sorted(set(settings) - set(SETTING_NAMES))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {unknown}",
            code="BAD_ARGUMENT",
            hint=f"settings are {', '.join(SETTING_NAMES)}; strategy parameters go in params",
        )
    file = _strategy_file(strategy)
    frame, dataset_name = _data(dataset, sample)
    started = time.perf_counter()
    with time_limit_scope(time_limit):
        res = backtest(file, frame, dataset=dataset_name, source=source, **params, **settings)
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {
        "strategy": res.strategy_name,
        "file": file,
        "params": json_safe(res.params),
        "settings": res.settings.to_dict(),
        "dataset": dataset_name,
        "sample": sample,
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
    from qlm_kernel.workspace import workspace_dir

    name = f"run-{run_id}.html" if run_id is not None else f"run-{int(time.time() * 1000)}.html"
    path = workspace_dir("reports") / name
    res.save_report(str(path))
    return {"path": str(path), "uri": f"qlm://reports/{name}"}


def optimize_parameters(
    strategy: str,
    space: dict[str, list[Any]],
    method: str = "grid",
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
    from qlm_kernel.optimize import optimize

    space = _check_mapping(space, "space")
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
    settings = _check_mapping(settings, "settings")
    file = _strategy_file(strategy)
    frame, dataset_name = _data(dataset, sample)
    res = optimize(
        file,
        frame,
        space,
        method=method,
        objective=objective,
        maximize=maximize,
        n_trials=n_trials,
        seed=seed,
        dataset=dataset_name,
        progress=progress,
        **settings,
    )
    out = res.to_dict()
    trials = res.trials
    if len(trials) and res.objective in trials:
        ranked = trials[trials["status"] == "ok"].sort_values(res.objective, ascending=not res.maximize)
        out["top"] = ranked.head(5).to_dict("records")
    return json_safe(out)


def get_job(job_id: str, trials: int = 5) -> dict[str, Any]:
    """One job (optimization, check) with progress, heartbeat age and its first/best trials."""
    from qlm_kernel.cli.jobs import job_view, unknown_job
    from qlm_kernel.store import default_store

    store = default_store()
    job = store.get_job(str(job_id))
    if job is None:
        raise unknown_job(str(job_id))
    return json_safe(job_view(store, job, max(0, min(int(trials), 100))))


def cancel_job(job_id: str) -> dict[str, Any]:
    """Ask a running job to stop (it stops between batches); returns whether the flag was set."""
    from qlm_kernel.cli.jobs import unknown_job
    from qlm_kernel.store import default_store

    store = default_store()
    if store.get_job(str(job_id)) is None:
        raise unknown_job(str(job_id))
    return {"job_id": job_id, "cancel_requested": bool(store.request_cancel(str(job_id)))}


def list_jobs(status: str | None = None, limit: int = 20) -> dict[str, Any]:
    """The newest jobs with their status and progress."""
    from qlm_kernel.cli.jobs import progress
    from qlm_kernel.store import default_store

    jobs = default_store().list_jobs(status=status, limit=max(1, min(int(limit), 500)))
    return {"jobs": json_safe([{**j, "progress": progress(j)} for j in jobs])}


def list_runs(limit: int = 20, strategy: str | None = None) -> dict[str, Any]:
    """The newest recorded backtest runs (stats or error)."""
    from qlm_kernel.store import default_store

    return {
        "runs": json_safe(default_store().list_runs(limit=max(1, min(int(limit), 500)), strategy=strategy))
    }


def sanity_check(
    strategy: str,
    check: str = "lookahead",
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    space: dict[str, list[Any]] | None = None,
    n: int = 20,
    n_splits: int = 4,
    objective: str = "sharpe",
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One overfitting/lookahead check; its report (passed, verdict, numbers).

    ``lookahead`` uses ``params``; ``white_noise`` (``n`` permutations), ``walk_forward``
    (``n_splits``), ``pbo`` and ``deflated_sharpe`` search ``space`` (pbo/deflated run one grid
    optimization and judge it).
    """
    from qlm_kernel import sanity

    if check not in SANITY_CHECKS:
        raise ConfigError(
            f"unknown check {check!r}", code="BAD_ARGUMENT", hint=f"one of {', '.join(SANITY_CHECKS)}"
        )
    params, settings = _check_mapping(params, "params"), _check_mapping(settings, "settings")
    file = _strategy_file(strategy)
    frame, _ = _data(dataset, sample)
    if check == "lookahead":
        return json_safe(sanity.lookahead(file, frame, **params, **settings).to_dict())
    space = _check_mapping(space, "space")
    if not space:
        raise ConfigError(
            f"the {check} check needs a parameter space",
            code="BAD_ARGUMENT",
            hint='e.g. space={"fast": [5, 10, 20], "slow": [50, 100]}',
        )
    if check == "white_noise":
        report = sanity.white_noise(file, frame, space=space, n=int(n), objective=objective, **settings)
    elif check == "walk_forward":
        report = sanity.walk_forward(
            file, frame, space=space, n_splits=int(n_splits), objective=objective, **settings
        )
    else:
        from qlm_kernel.optimize import optimize

        opt = optimize(file, frame, space, method="grid", objective=objective, **settings)
        report = sanity.pbo(opt) if check == "pbo" else sanity.deflated_sharpe(opt)
    return json_safe(report.to_dict())


# --- data and system ------------------------------------------------------------------------------


def list_datasets() -> dict[str, Any]:
    """Datasets imported into the workspace, plus the built-in samples usable as ``sample``."""
    from qlm_kernel.data.samples import SAMPLE_KINDS
    from qlm_kernel.session import data_manager

    return {
        "datasets": json_safe(data_manager().list()),
        "samples": {"kinds": list(SAMPLE_KINDS), "example": {"kind": "synthetic", "n": 10_000, "seed": 0}},
    }


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

    from qlm_kernel.heal.preview import next_prompt
    from qlm_kernel.session.strategies import check_strategy_name, strategy_file_path

    kwargs = {**_check_mapping(settings, "settings"), **_check_mapping(params, "params")}
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
    from qlm_kernel.heal import heal
    from qlm_kernel.session.strategies import check_strategy_name

    check_strategy_name(strategy)  # names only over MCP: no paths
    kwargs = {**_check_mapping(settings, "settings"), **_check_mapping(params, "params")}
    frame, dataset_name = _data(dataset, sample)
    model = None if replies is None else ReplayModel(replies)
    report = heal(strategy, frame, dataset=dataset_name, model=model, max_attempts=max_attempts,
                  time_limit=time_limit, model_name="mcp-sampling" if model else None, source="mcp",
                  workspace_only=True, **kwargs)
    return json_safe({**report.to_dict(), "sampled_replies": 0 if replies is None else len(replies)})


# --- paper trading --------------------------------------------------------------------------------


def start_paper_session(strategy: str, dataset: str | None = None, sample: dict[str, Any] | None = None,
                        params: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
                        speed: float = 20.0, risk: dict[str, Any] | None = None) -> dict[str, Any]:
    """Paper-trade a strategy on replayed bars in a background thread; returns the session id."""
    from qlm_kernel.session.paper import start_paper_session as start

    file = _strategy_file(strategy)
    if dataset is None and sample is None:
        sample = {"kind": "synthetic", "n": 2_000, "seed": 0}
    frame, _ = _data(dataset, sample)
    return json_safe(start(file, data=frame, params=_check_mapping(params, "params"),
                           settings=_check_mapping(settings, "settings"), speed=speed,
                           risk=_check_mapping(risk, "risk") or None))


def paper_session_status(session_id: str) -> dict[str, Any]:
    """Status, bars processed, position, cash, equity, P&L, orders and fills of a paper session."""
    from qlm_kernel.session.paper import paper_session_status as status

    return json_safe(status(str(session_id)))


def stop_paper_session(session_id: str) -> dict[str, Any]:
    """Stop a paper session after its current bar; its final status."""
    from qlm_kernel.session.paper import stop_paper_session as stop

    return json_safe(stop(str(session_id)))


def list_paper_sessions(limit: int = 20) -> dict[str, Any]:
    """Paper sessions, newest first."""
    from qlm_kernel.session.paper import list_paper_sessions as listing

    return {"sessions": json_safe(listing(limit=max(1, min(int(limit), 500))))}
